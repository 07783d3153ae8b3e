"""The pure parts of the feedback loop: JSONPaths, reading predictions and labels, figures,
and the data set's query and layout."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from feedback import QualitySpec, compile_path, figures
from feedback.dataset.duck import duckdb_path
from feedback.dataset.query import DatasetError, ExportQuery, feature_column, partition_path
from feedback.dataset.rows import feature_rows, feature_types, label_rows, prediction_rows
from feedback.extract import class_key, read_label, read_prediction
from feedback.paths import MISSING, PathError


@pytest.mark.parametrize(("path", "doc", "found"), [
    ("$", 5, 5),
    ("$.a.b[1]", {"a": {"b": [1, 2]}}, 2),
    ("$['a b']", {"a b": 3}, 3),
    ("$.a[5]", {"a": [1]}, MISSING),
    ("$.outputs[*].data", {"outputs": [{"data": [1]}, {"data": [2]}]}, [[1], [2]]),
    ("$.x[?(@.k > 1)].v", {"x": [{"k": 1, "v": "a"}, {"k": 2, "v": "b"}]}, "b"),
])
def test_paths_simple_and_extended(path, doc, found):
    assert compile_path(path).find(doc) == found


def test_a_path_must_start_at_the_root():
    with pytest.raises(PathError):
        compile_path("truthful")
    assert duckdb_path("$.a['b\"c'][2]") == '$."a"."b\\\\"c"[2]'.replace("\\\\", "\\")
    assert duckdb_path("$.x[*]") is None


def test_predictions_are_read_as_numbers_or_classes():
    spec = QualitySpec()
    assert read_prediction('{"prediction": [5.5, [6]]}', spec)[0] == (5.5, 6.0)
    assert read_prediction('{"prediction": ["a"]}', spec)[0] is None
    cls = QualitySpec(task="classification")
    assert read_prediction('{"prediction": [1, 1.0, true, "x"]}', cls)[0] == ("1", "1", "true",
                                                                              "x")
    assert read_prediction("not json", spec)[2] == "the answer is not JSON"
    assert class_key(1.5) is None and class_key(None) is None


def test_labels_per_row_and_their_reasons():
    spec = QualitySpec()
    assert read_label({"truthful": 6}, 1, spec)[:2] == ((6.0,), "$.truthful")
    assert read_label(7, 1, spec)[0] == (7.0,)
    assert read_label({"y": [1, 2]}, 2, spec)[0] == (1.0, 2.0)
    assert read_label({"y": [1, 2]}, 3, spec)[2] == "row_count"
    assert read_label({"y": float("nan")}, 1, QualitySpec(label="$.y"))[2] == "not_a_number"


def test_figures_of_joined_pairs():
    assert figures.pairs([5, 6, 9], [6, 6, 6], "regression") == {
        "count": 3, "mae": 1.333333, "rmse": 1.825742, "bias": 0.666667}
    assert figures.pairs([], [], "regression")["mae"] is None
    out = figures.pairs(["a", "b"], ["a", "a"], "classification")
    assert out["accuracy"] == 0.5 and out["classes"]["a"]["recall"] == 0.5
    assert figures.median([3, 1, 2]) == 2


def test_the_export_widens_its_range_to_whole_hours():
    q = ExportQuery("wine", since=datetime(2026, 11, 25, 10, 30, tzinfo=UTC),
                    until=datetime(2026, 11, 25, 12, 0, 1, tzinfo=UTC))
    assert q.first_hour == datetime(2026, 11, 25, 10, tzinfo=UTC)
    assert q.end_hour == datetime(2026, 11, 25, 13, tzinfo=UTC)
    assert partition_path("wine", "1.0", 2026, 5, 7) == \
        "model_name=wine/model_version=1.0/year=2026/month=05/day=07"
    assert feature_column("time") == "feature_time" and feature_column("pH") == "pH"
    for bad in ({"model_name": "../x"}, {"model_name": "w", "task": "rank"},
                {"model_name": "w", "label": "y"}):
        with pytest.raises(DatasetError):
            ExportQuery(**bad)


def test_the_spark_engines_record_readers():
    assert prediction_rows('{"prediction": [5.5, "x", [7]]}', None, "regression") == [
        5.5, None, 7.0]
    assert prediction_rows('{"outputs": [{"data": [1]}]}', None, "classification") == ["1"]
    content = '{"columns": ["a", "b"], "data": [[1, "x"], [2.5, null]]}'
    assert feature_rows(content) == [{"a": "1", "b": "x"}, {"a": "2.5", "b": None}]
    assert feature_types(content) == {"a": ["BIGINT", "DOUBLE"], "b": ["VARCHAR"]}
    assert label_rows('{"truthful": [5, 6]}', 2, "regression", None) == [5.0, 6.0]
    assert label_rows('{"truthful": "?"}', 1, "regression", None) is None
