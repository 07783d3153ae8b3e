"""DataFrames in and out of the SDK (pure)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from mlgate import frames


def test_a_dataframe_becomes_an_invoke_body_with_json_values():
    df = pd.DataFrame({"a": [1.5, math.nan], "b": [np.int64(3), np.int64(4)],
                       "when": pd.to_datetime(["2026-12-01", "2026-12-02"])})
    body = frames.invoke_body(df)
    assert body == {"columns": ["a", "b", "when"],
                    "data": [[1.5, 3, "2026-12-01T00:00:00"], [None, 4, "2026-12-02T00:00:00"]]}
    assert type(body["data"][0][1]) is int


def test_row_dicts_and_bodies_are_taken_too():
    assert frames.invoke_body([{"a": 1}, {"b": 2, "a": 3}]) == {
        "columns": ["a", "b"], "data": [[1, None], [3, 2]]}
    body = {"columns": ["a"], "data": [[1]]}
    assert frames.invoke_body(body) == body
    with pytest.raises(ValueError, match="invoke body"):
        frames.invoke_body({"columns": ["a"]})
    with pytest.raises(TypeError):
        frames.invoke_body("a,b\n1,2")
    with pytest.raises(TypeError):
        frames.invoke_body([])


def test_a_body_is_split_into_calls_of_batch_size_rows():
    body = {"columns": ["a"], "data": [[i] for i in range(5)]}
    assert frames.split_body(body, None) == [body]
    parts = frames.split_body(body, 2)
    assert [p["data"] for p in parts] == [[[0], [1]], [[2], [3]], [[4]]]
    assert all(p["columns"] == ["a"] for p in parts)


def test_odahu_and_v2_answers_become_columns():
    assert frames.answer_columns({"prediction": [5.5, 6.0], "columns": ["quality"]}) == (
        ["quality"], [[5.5], [6.0]])
    assert frames.answer_columns({"prediction": [[0.1, 0.9]], "columns": ["no", "yes"]}) == (
        ["no", "yes"], [[0.1, 0.9]])
    assert frames.answer_columns({"prediction": [[1, 2]], "columns": []}) == (
        ["prediction_0", "prediction_1"], [[1, 2]])
    v2 = {"outputs": [{"name": "quality", "shape": [2, 1], "data": [5.0, 6.0]},
                      {"name": "p", "shape": [2, 2], "data": [0.1, 0.9, 0.2, 0.8]}]}
    assert frames.answer_columns(v2) == (["quality", "p_0", "p_1"],
                                         [[5.0, 0.1, 0.9], [6.0, 0.2, 0.8]])
    with pytest.raises(ValueError):
        frames.answer_columns({"error": "x"})


def test_predictions_keep_the_input_index_and_the_request_ids():
    index = pd.Index([10, 11, 12], name="wine")
    frame = frames.prediction_frame(
        [({"prediction": [5, 6], "columns": ["quality"]}, "r1"),
         ({"prediction": [7], "columns": ["quality"]}, "r2")], index,
        {"model_name": "wine", "model_version": "1.0"})
    assert list(frame.columns) == ["quality", "request_id"]
    assert frame.index.equals(index)
    assert frame["request_id"].tolist() == ["r1", "r1", "r2"]
    assert frame.attrs["model_name"] == "wine"


def test_records_get_times_in_utc():
    frame = frames.records_frame([{"request_id": "r1", "time": "2026-12-05 10:00:01 +0000",
                                   "payload": {"json": {"truthful": 6}}}])
    assert frame["time"][0] == datetime(2026, 12, 5, 10, 0, 1, tzinfo=UTC)
    assert frame["payload"][0] == {"json": {"truthful": 6}}
    assert frames.records_frame([]).empty
