"""spec.analysis parsing: the issue's example, defaults, round trip, one message per bad field."""

from __future__ import annotations

import pytest

from deploy.control.analysis import (
    DEFAULT_INTERVAL,
    DEFAULT_MIN_SAMPLES,
    DEFAULT_PROGRESS_DEADLINE,
    DEFAULT_STEP_WEIGHTS,
    DEFAULT_THRESHOLD,
    AnalysisError,
    parse_analysis,
)
from deploy.control.analysis_metrics import DEFAULT_CONFIDENCE, MetricSpec
from deploy.control.durations import format_duration, parse_duration

TARGETS = ["wine-v1", "wine-v2"]
ISSUE_EXAMPLE = {
    "canary": "wine-v2",
    "interval": "30s",
    "stepWeights": [10, 25, 50],
    "threshold": 3,
    "minSamples": 50,
    "progressDeadline": "30m",
    "metrics": [
        {"name": "error-rate", "max": 1},
        {"name": "latency-p99", "maxIncrease": 20},
        {"name": "quality", "metric": "mae", "maxIncrease": 5, "confidence": 0.95},
    ],
}


def errors_of(raw: object, targets: list[str] = TARGETS) -> dict[str, str]:
    with pytest.raises(AnalysisError) as caught:
        parse_analysis(raw, targets)
    paths = [path for path, _ in caught.value.errors]
    assert len(paths) == len(set(paths)), f"one message per field, got {caught.value.errors}"
    return dict(caught.value.errors)


def with_fields(**changes: object) -> dict[str, object]:
    return {**ISSUE_EXAMPLE, **changes}


def test_the_issue_example_parses() -> None:
    spec = parse_analysis(ISSUE_EXAMPLE, TARGETS)
    assert (spec.canary, spec.stable) == ("wine-v2", "wine-v1")
    assert spec.interval == 30 and spec.progress_deadline == 1800
    assert spec.step_weights == (10, 25, 50)
    assert (spec.threshold, spec.min_samples) == (3, 50)
    assert spec.metrics == (
        MetricSpec("error-rate", max=1.0),
        MetricSpec("latency-p99", max_increase=20.0),
        MetricSpec("quality", max_increase=5.0, confidence=0.95, metric="mae"),
    )
    assert [m.label for m in spec.metrics] == ["error-rate", "latency-p99", "quality-mae"]


def test_the_stable_variant_is_the_other_target_whatever_the_order() -> None:
    spec = parse_analysis(ISSUE_EXAMPLE, ["wine-v2", "wine-v1"])
    assert (spec.canary, spec.stable) == ("wine-v2", "wine-v1")


def test_defaults() -> None:
    spec = parse_analysis({"canary": "wine-v2", "metrics": [{"name": "latency-p50"}]}, TARGETS)
    assert spec.interval == DEFAULT_INTERVAL == 60
    assert spec.step_weights == DEFAULT_STEP_WEIGHTS == (10, 25, 50)
    assert spec.threshold == DEFAULT_THRESHOLD == 3
    assert spec.min_samples == DEFAULT_MIN_SAMPLES == 50
    assert spec.progress_deadline == DEFAULT_PROGRESS_DEADLINE == 1800
    [metric] = spec.metrics
    assert metric.confidence == DEFAULT_CONFIDENCE == 0.95
    assert (metric.max, metric.max_increase) == (None, None)
    assert metric.allowed_increase == 0.0, "no bound at all: not significantly worse"


def test_a_ceiling_alone_sets_no_relative_bound() -> None:
    spec = parse_analysis(ISSUE_EXAMPLE, TARGETS)
    assert spec.metrics[0].allowed_increase is None
    assert spec.metrics[1].allowed_increase == 20.0


@pytest.mark.parametrize(
    "raw",
    [
        ISSUE_EXAMPLE,
        with_fields(interval=90, progressDeadline="1h30m"),
        with_fields(interval=1.5, progressDeadline=2.5),
        {"canary": "wine-v2", "metrics": [{"name": "quality", "metric": "accuracy", "max": 10}]},
    ],
)
def test_to_dict_round_trips(raw: dict[str, object]) -> None:
    spec = parse_analysis(raw, TARGETS)
    assert parse_analysis(spec.to_dict(), TARGETS) == spec
    assert parse_analysis(spec.to_dict(), TARGETS).to_dict() == spec.to_dict()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (30, 30.0),
        (2.5, 2.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        (" 2m ", 120.0),
        ("1.5s", 1.5),
        ("45", 45.0),
        ("0.25", 0.25),
        (1e-05, 1e-05),
        (1234.5678, 1234.5678),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    "text",
    ["", "-30", "5 minutes", "1x", "m5", True, None, [], 0, -3, "0s", float("nan"), float("inf")],
)
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_format_duration_is_short() -> None:
    assert [format_duration(s) for s in (30, 60, 90, 1800, 5400, 86400, 0.5)] == [
        "30s",
        "1m",
        "1m30s",
        "30m",
        "1h30m",
        "1d",
        "0.5s",
    ]


def test_canary_not_a_target() -> None:
    assert errors_of(with_fields(canary="wine-v3")) == {
        "spec.analysis.canary": "must be one of the route's targets (wine-v1, wine-v2), "
        "got 'wine-v3'"
    }


def test_canary_missing() -> None:
    raw = dict(ISSUE_EXAMPLE)
    del raw["canary"]
    assert errors_of(raw) == {"spec.analysis.canary": "must name the target deployment to roll out"}


def test_a_route_of_three_targets_is_refused() -> None:
    errors = errors_of(ISSUE_EXAMPLE, ["wine-v1", "wine-v2", "wine-v3"])
    assert list(errors) == ["spec.analysis.canary"]
    assert "exactly two targets" in errors["spec.analysis.canary"]
    assert "wine-v1, wine-v2, wine-v3" in errors["spec.analysis.canary"]


def test_a_route_of_one_target_is_refused() -> None:
    errors = errors_of(ISSUE_EXAMPLE, ["wine-v2"])
    assert "exactly two targets" in errors["spec.analysis.canary"]


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([], "must be a non-empty list of canary weights, got []"),
        ("10,25", "must be a non-empty list of canary weights, got '10,25'"),
        ([10, 5], "must increase, got [10, 5]"),
        ([10, 10, 50], "must increase, got [10, 10, 50]"),
        ([0, 50], "each weight must be an integer from 1 to 99, got [0, 50]"),
        ([50, 100], "each weight must be an integer from 1 to 99, got [50, 100]"),
        ([10, 2.5], "each weight must be an integer from 1 to 99, got [10, 2.5]"),
        ([True, 50], "each weight must be an integer from 1 to 99, got [True, 50]"),
    ],
)
def test_bad_step_weights(weights: object, message: str) -> None:
    assert errors_of(with_fields(stepWeights=weights)) == {"spec.analysis.stepWeights": message}


def test_the_message_of_the_brief() -> None:
    with pytest.raises(AnalysisError) as caught:
        parse_analysis(with_fields(stepWeights=[10, 5]), TARGETS)
    assert caught.value.messages() == ["spec.analysis.stepWeights: must increase, got [10, 5]"]
    assert str(caught.value) == "spec.analysis.stepWeights: must increase, got [10, 5]"


@pytest.mark.parametrize("interval", ["500ms", 0.5, "0.9s"])
def test_interval_under_one_second(interval: object) -> None:
    assert errors_of(with_fields(interval=interval)) == {
        "spec.analysis.interval": f"must be at least 1s, got {interval!r}"
    }


def test_interval_not_a_duration() -> None:
    assert errors_of(with_fields(interval="often")) == {
        "spec.analysis.interval": "must be a duration such as 30s, 5m or 1h, got 'often'"
    }


def test_an_interval_longer_than_the_default_deadline() -> None:
    raw = {"canary": "wine-v2", "interval": "1h", "metrics": [{"name": "error-rate"}]}
    assert errors_of(raw) == {
        "spec.analysis.progressDeadline": "must be at least the interval (1h), got '30m'"
    }


def test_deadline_shorter_than_interval() -> None:
    assert errors_of(with_fields(interval="5m", progressDeadline="1m")) == {
        "spec.analysis.progressDeadline": "must be at least the interval (5m), got '1m'"
    }


@pytest.mark.parametrize("field", ["threshold", "minSamples"])
@pytest.mark.parametrize("value", [0, -1, 2.5, "3", True])
def test_counts_must_be_positive_integers(field: str, value: object) -> None:
    assert errors_of(with_fields(**{field: value})) == {
        f"spec.analysis.{field}": f"must be an integer of at least 1, got {value!r}"
    }


def test_unknown_metric() -> None:
    errors = errors_of(with_fields(metrics=[{"name": "throughput", "max": 5}]))
    assert errors == {
        "spec.analysis.metrics[0].name": "unknown metric 'throughput'; known: "
        "error-rate, latency-p50, latency-p90, latency-p95, latency-p99, quality"
    }


@pytest.mark.parametrize("metrics", [[], None, "error-rate"])
def test_metrics_are_required(metrics: object) -> None:
    errors = errors_of(with_fields(metrics=metrics))
    assert list(errors) == ["spec.analysis.metrics"]
    assert errors["spec.analysis.metrics"].startswith("must list at least one metric")


def test_quality_needs_a_judgeable_metric() -> None:
    errors = errors_of(
        with_fields(
            metrics=[
                {"name": "quality", "maxIncrease": 5},
                {"name": "quality", "metric": "rmse", "maxIncrease": 5},
                {"name": "quality", "metric": "bias", "max": 1},
                {"name": "quality", "metric": "f1"},
            ]
        )
    )
    assert errors["spec.analysis.metrics[0].metric"] == (
        "must be one of mae, accuracy for name: quality, got None"
    )
    assert errors["spec.analysis.metrics[1].metric"].startswith("rmse is not judgeable")
    assert "use metric: mae" in errors["spec.analysis.metrics[1].metric"]
    assert errors["spec.analysis.metrics[2].metric"].startswith("bias is not judgeable")
    assert errors["spec.analysis.metrics[3].metric"] == (
        "must be one of mae, accuracy for name: quality, got 'f1'"
    )


@pytest.mark.parametrize("odd", [["mae"], {"a": 1}, 3])
def test_odd_values_get_messages_not_crashes(odd: object) -> None:
    errors = errors_of(with_fields(canary=odd, metrics=[{"name": odd, "metric": odd}]))
    assert set(errors) == {
        "spec.analysis.canary",
        "spec.analysis.metrics[0].name",
        "spec.analysis.metrics[0].metric",
    }
    errors = errors_of(with_fields(metrics=[{"name": "quality", "metric": odd}]))
    assert set(errors) == {"spec.analysis.metrics[0].metric"}


def test_metric_field_only_for_quality() -> None:
    assert errors_of(with_fields(metrics=[{"name": "latency-p99", "metric": "mae"}])) == {
        "spec.analysis.metrics[0].metric": "only a quality metric takes metric"
    }


@pytest.mark.parametrize(
    ("metric", "path", "message"),
    [
        ({"name": "error-rate", "max": 101}, "max", "must be a number from 0 to 100, got 101"),
        (
            {"name": "quality", "metric": "accuracy", "max": 150},
            "max",
            "must be a number from 0 to 100, got 150",
        ),
        ({"name": "latency-p99", "max": -0.1}, "max", "must be a number of at least 0, got -0.1"),
        ({"name": "latency-p99", "max": "1s"}, "max", "must be a number of at least 0, got '1s'"),
        (
            {"name": "latency-p99", "maxIncrease": -5},
            "maxIncrease",
            "must be a number of at least 0, got -5",
        ),
        (
            {"name": "error-rate", "confidence": 1},
            "confidence",
            "must be a number from 0.5 to below 1, got 1",
        ),
        (
            {"name": "error-rate", "confidence": 0.3},
            "confidence",
            "must be a number from 0.5 to below 1, got 0.3",
        ),
        (
            {"name": "error-rate", "ceiling": 1},
            "ceiling",
            "unknown field; known: name, metric, max, maxIncrease, confidence",
        ),
    ],
)
def test_bad_metric_fields(metric: dict[str, object], path: str, message: str) -> None:
    assert errors_of(with_fields(metrics=[metric])) == {f"spec.analysis.metrics[0].{path}": message}


def test_a_latency_ceiling_over_100_seconds_is_fine() -> None:
    spec = parse_analysis(with_fields(metrics=[{"name": "latency-p99", "max": 120}]), TARGETS)
    assert spec.metrics[0].max == 120


def test_a_metric_listed_twice() -> None:
    errors = errors_of(
        with_fields(
            metrics=[
                {"name": "latency-p99", "max": 1},
                {"name": "latency-p99", "maxIncrease": 5},
                {"name": "quality", "metric": "mae"},
                {"name": "quality", "metric": "accuracy"},
            ]
        )
    )
    assert errors == {"spec.analysis.metrics[1]": "latency-p99 is listed twice"}


def test_unknown_analysis_field() -> None:
    assert errors_of(with_fields(steps=[10])) == {
        "spec.analysis.steps": "unknown field; known: canary, interval, stepWeights, threshold, "
        "minSamples, progressDeadline, metrics"
    }


def test_not_an_object() -> None:
    assert list(errors_of([1, 2])) == ["spec.analysis"]


def test_every_bad_field_is_named_at_once() -> None:
    raw = {
        "canary": "wine-v9",
        "interval": "0.2s",
        "stepWeights": [50, 25],
        "threshold": 0,
        "minSamples": "many",
        "progressDeadline": "soon",
        "metrics": [
            {"name": "cpu"},
            {"name": "latency-p95", "maxIncrease": -1},
            {"name": "quality", "metric": "rmse"},
        ],
        "extra": 1,
    }
    assert sorted(errors_of(raw)) == sorted(
        [
            "spec.analysis.extra",
            "spec.analysis.canary",
            "spec.analysis.interval",
            "spec.analysis.progressDeadline",
            "spec.analysis.stepWeights",
            "spec.analysis.threshold",
            "spec.analysis.minSamples",
            "spec.analysis.metrics[0].name",
            "spec.analysis.metrics[1].maxIncrease",
            "spec.analysis.metrics[2].metric",
        ]
    )


def test_the_path_prefix_can_be_chosen() -> None:
    with pytest.raises(AnalysisError) as caught:
        parse_analysis(with_fields(threshold=0), TARGETS, path="analysis")
    assert caught.value.errors == [
        ("analysis.threshold", "must be an integer of at least 1, got 0")
    ]
