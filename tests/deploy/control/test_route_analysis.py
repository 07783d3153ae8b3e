"""``spec.analysis`` on a ModelRoute: validated with the route, stored as written, kept by a
PUT that does not mention it; ``status.rollout`` and the rollout's history (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deploy.control.resource import ValidationError
from deploy.control.rollout import start
from deploy.control.rollout_manual import pause
from deploy.control.rollout_view import HISTORY_LIMIT, record, rollout_status
from deploy.control.routes import keep_analysis, parse_route, route_analysis, route_from_stored

ANALYSIS = {"canary": "wine-v2", "interval": "30s", "stepWeights": [10, 25, 50],
            "metrics": [{"name": "error-rate", "max": 1},
                        {"name": "quality", "metric": "mae", "maxIncrease": 5}]}
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def doc(analysis=ANALYSIS, targets=(("wine-v1", 100), ("wine-v2", 0))) -> dict:
    spec = {"urlPrefix": "/custom/wine",
            "modelDeployments": [{"mdName": n, "weight": w} for n, w in targets]}
    if analysis is not ...:
        spec["analysis"] = analysis
    return {"kind": "ModelRoute", "id": "wine", "spec": spec}


def parse(data: dict):
    return parse_route(data, lambda name: name in ("wine-v1", "wine-v2", "wine-v3"))


def test_a_valid_analysis_is_kept_as_written_and_parsed_on_use():
    route = parse(doc())
    assert route.spec.to_dict()["analysis"] == ANALYSIS
    spec = route_analysis(route)
    assert (spec.canary, spec.stable, spec.interval, spec.step_weights) == (
        "wine-v2", "wine-v1", 30.0, (10, 25, 50))
    stored = route_from_stored("wine", False, route.spec.to_dict(), "", "")
    assert stored.spec.analysis == ANALYSIS
    assert route_analysis(parse(doc(...))) is None
    assert route_analysis(parse(doc(None))) is None


@pytest.mark.parametrize(("analysis", "messages"), [
    ({**ANALYSIS, "canary": "wine-v3"},
     ["spec.analysis.canary: must be one of the route's targets (wine-v1, wine-v2), "
      "got 'wine-v3'"]),
    ({**ANALYSIS, "stepWeights": []},
     ["spec.analysis.stepWeights: must be a non-empty list of canary weights, got []"]),
    ({**ANALYSIS, "stepWeights": [10, 50, 25]},
     ["spec.analysis.stepWeights: must increase, got [10, 50, 25]"]),
    ({**ANALYSIS, "metrics": [{"name": "throughput"}]},
     ["spec.analysis.metrics[0].name: unknown metric 'throughput'; known: error-rate, "
      "latency-p50, latency-p90, latency-p95, latency-p99, quality"]),
    ({**ANALYSIS, "interval": "500ms"},
     ["spec.analysis.interval: must be at least 1s, got '500ms'"]),
])
def test_each_bad_field_is_refused_with_its_own_message(analysis, messages):
    with pytest.raises(ValidationError) as caught:
        parse(doc(analysis))
    assert caught.value.errors == messages
    assert str(caught.value).startswith("Validation of model route is failed: spec.analysis.")


def test_every_broken_field_is_named_at_once():
    bad = {**ANALYSIS, "canary": "nope", "stepWeights": [50, 50], "interval": 0.2,
           "metrics": [{"name": "latency"}]}
    with pytest.raises(ValidationError) as caught:
        parse(doc(bad, targets=(("wine-v1", 60), ("wine-v2", 30))))
    fields = [e.split(":")[0] for e in caught.value.errors]
    assert fields == ["total target weight does not equal 100 (got 90)", "spec.analysis.canary",
                      "spec.analysis.interval", "spec.analysis.stepWeights",
                      "spec.analysis.metrics[0].name"]


def test_a_put_without_analysis_keeps_the_stored_one_and_null_removes_it():
    current = parse(doc())
    odahu = doc(...)  # what odahuflowctl sends back: it knows no spec.analysis
    assert keep_analysis(odahu, current)["spec"]["analysis"] == ANALYSIS
    assert "analysis" not in odahu["spec"]  # the body itself is not changed
    assert keep_analysis(doc(None), current)["spec"]["analysis"] is None
    assert keep_analysis(odahu, None) is odahu
    assert keep_analysis(odahu, parse(doc(...))) is odahu


def test_status_rollout_names_the_issue_fields():
    spec = route_analysis(parse(doc()))
    state, _ = start(spec, T0)
    status = rollout_status(spec, state)
    assert {"phase", "step", "canaryWeight", "failedChecks", "message",
            "lastJudgement"} <= set(status)
    assert (status["phase"], status["step"], status["steps"], status["canaryWeight"]) == (
        "Progressing", 1, 3, 10)
    assert status["weights"] == {"wine-v1": 90, "wine-v2": 10}
    assert status["deadline"] == "2026-12-01T09:30:00Z" and status["lastJudgement"] is None
    paused, _ = pause(spec, state, T0 + timedelta(seconds=5))
    assert rollout_status(spec, paused)["deadline"] is None


def test_history_has_one_entry_per_change_and_is_bounded():
    spec = route_analysis(parse(doc()))
    state, _ = start(spec, T0)
    history = record([], spec, state, T0)
    assert record(history, spec, state, T0 + timedelta(seconds=30)) == history
    paused, _ = pause(spec, state, T0 + timedelta(seconds=40))
    history = record(history, spec, paused, T0 + timedelta(seconds=40))
    assert [h["phase"] for h in history] == ["Progressing", "Paused"]
    assert record(history, spec, state, T0, restarted=True) == [history[0]]
    long = [{"phase": str(i)} for i in range(HISTORY_LIMIT)]
    assert len(record(long, spec, state, T0)) == HISTORY_LIMIT
