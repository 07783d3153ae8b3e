"""``spec.quality``: validation with a message per field, the annotation ODAHU clients keep,
and what the live join reads from it."""

from __future__ import annotations

import json

import pytest

from deploy.control.deployments import parse_deployment
from deploy.control.quality import QUALITY_ANNOTATION, quality_errors, quality_spec
from deploy.control.resource import ValidationError


def deployment(spec_extra: dict) -> dict:
    return {"id": "wine", "spec": {"image": "file:///m", "predictor": "odahu-ml-server",
                                   **spec_extra}}


def test_spec_quality_is_kept_as_written_and_mirrored_in_the_annotation():
    quality = {"label": "$.truthful", "task": "regression", "window": "15m"}
    dep = parse_deployment(deployment({"quality": quality}))
    out = dep.spec.to_dict()
    assert out["quality"] == quality and list(out["quality"]) == ["label", "task", "window"]
    assert json.loads(out["annotations"][QUALITY_ANNOTATION]) == quality
    again = parse_deployment({"id": "wine", "spec": out})  # as the API stores and reads it
    assert again.spec.to_dict() == out


def test_the_annotation_alone_sets_it_and_spec_quality_wins_over_a_stale_one():
    alone = parse_deployment(deployment({"annotations": {
        QUALITY_ANNOTATION: "{task: classification, classes: [a, b]}"}}))
    assert alone.spec.quality == {"task": "classification", "classes": ["a", "b"]}
    both = parse_deployment(deployment({"quality": {"window": "1d"}, "annotations": {
        QUALITY_ANNOTATION: '{"window": "1h"}'}}))
    assert both.spec.quality == {"window": "1d"}
    assert json.loads(both.spec.annotations[QUALITY_ANNOTATION]) == {"window": "1d"}
    assert "quality" not in parse_deployment(deployment({})).spec.to_dict()


@pytest.mark.parametrize(("quality", "message"), [
    ("regression", "quality must be an object"),
    ({"task": "ranking"}, "quality.task must be one of regression, classification"),
    ({"prediction": "prediction"}, "quality.prediction must be a JSONPath expression"),
    ({"label": "$..[?("}, "quality.label '$..[?(' is not a JSONPath expression"),
    ({"window": "90s"}, "quality.window must be a whole number of minutes"),
    ({"window": "soon"}, "quality.window must be a duration"),
    ({"classes": ["a"]}, "quality.classes needs task: classification"),
    ({"task": "classification", "classes": [1.5]}, "quality.classes must be a non-empty list"),
    ({"task": "classification", "classes": ["1", 1]}, "quality.classes has duplicates"),
    ({"metric": "mae"}, "unknown quality field(s): metric"),
])
def test_each_bad_field_is_named(quality, message):
    assert any(message in e for e in quality_errors(quality)), quality_errors(quality)
    with pytest.raises(ValidationError, match="Validation of model deployment is failed"):
        parse_deployment(deployment({"quality": quality}))


def test_a_bad_annotation_says_where_it_came_from():
    with pytest.raises(ValidationError) as info:
        parse_deployment(deployment({"annotations": {QUALITY_ANNOTATION: '{"task": "x"}'}}))
    assert "annotation mlgate.io/quality: quality.task must be one of" in str(info.value)
    with pytest.raises(ValidationError, match="is not JSON or YAML"):
        parse_deployment(deployment({"annotations": {QUALITY_ANNOTATION: "{a: [}"}}))


def test_what_the_join_reads_names_the_inferred_fields():
    spec = quality_spec({"task": "classification", "classes": [0, True, "x"], "window": "2h"})
    assert (spec.task, spec.window, spec.classes) == ("classification", 7200, ("0", "true", "x"))
    assert spec.defaults == ("prediction", "label") and spec.configured
    assert quality_spec(None) is None
