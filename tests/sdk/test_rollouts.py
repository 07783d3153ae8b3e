"""The SDK's canary rollouts without sockets: ``client.rollout(id)``'s operations, the
``Rollout`` view, and what a route write sends about ``spec.analysis``."""

from __future__ import annotations

import pytest

from mlgate import _ops, errors
from mlgate._steps import Progress
from mlgate.objects import Rollout, Route, route_row
from tests.sdk.test_ops import Script

JUDGED = {"at": "2026-12-05T10:01:00Z", "verdict": "inconclusive", "metrics": [
    {"name": "error-rate", "verdict": "pass", "canary": 0.0, "stable": 0.5, "bound": 1.0,
     "pValue": 0.8, "effect": -0.5, "samples": {"canary": 60, "stable": 540}, "reason": "ok"},
    {"name": "latency-p99", "verdict": "pass", "canary": 0.0041, "stable": 0.0039,
     "bound": 0.00468, "pValue": 0.3, "effect": 0.0001, "samples": {"canary": 60,
                                                                     "stable": 256},
     "reason": "ok"},
    {"name": "quality-mae", "verdict": "inconclusive", "canary": 0.41, "stable": None,
     "bound": None, "pValue": None, "effect": None, "samples": {"canary": 12, "stable": 0},
     "reason": "quality-mae: needs 50 labelled predictions per variant"}]}


def rollout(phase: str = "Inconclusive", weight: int = 10, step: int = 1, **more) -> dict:
    return {"routeId": "wine", "phase": phase, "step": step, "steps": 3, "canary": "wine-v2",
            "stable": "wine-v1", "canaryWeight": weight,
            "weights": {"wine-v1": 100 - weight, "wine-v2": weight}, "failedChecks": 0,
            "threshold": 3, "message": f"{phase} message", "interval": "30s",
            "deadline": "2026-12-05T10:30:00Z", "lastJudgement": JUDGED,
            "history": [{"at": "2026-12-05T10:00:00Z", "phase": "Progressing", "step": 1,
                         "canaryWeight": 10, "failedChecks": 0, "message": "started"}],
            **more}


def test_status_and_the_actions_call_the_rollout_endpoints():
    script = Script([("GET", "/route/wine/rollout", (200, rollout()))])
    got = script.run(_ops.get_rollout("wine"))
    assert isinstance(got, Rollout) and got.phase == "Inconclusive" and got.canary_weight == 10
    for action in _ops.ROLLOUT_ACTIONS:
        script = Script([("POST", f"/route/wine/rollout/{action}", (200, rollout("Paused")))])
        assert script.run(_ops.rollout_action("wine", action)).phase == "Paused"
    with pytest.raises(ValueError, match="unknown rollout action 'restart'"):
        Script([]).run(_ops.rollout_action("wine", "restart"))


def test_a_conflicting_action_raises_the_servers_message():
    script = Script([("POST", "/route/wine/rollout/resume",
                      (409, {"message": "only a paused rollout can be resumed"}))])
    with pytest.raises(errors.Conflict, match="only a paused rollout"):
        script.run(_ops.rollout_action("wine", "resume"))


def test_watch_follows_the_weight_until_the_rollout_ends():
    steps: list[Progress] = []

    def watched():  # the operation, with every Progress step it yields kept
        op = _ops.watch_rollout("wine", timeout=None)
        value = None
        while True:
            try:
                step = op.send(value)
            except StopIteration as stop:
                return stop.value
            if isinstance(step, Progress):
                steps.append(step)
            value = yield step

    script = Script([("GET", "/route/wine/rollout", (200, rollout("Progressing", 10))),
                     ("GET", "/route/wine/rollout", (200, rollout("Progressing", 25, 2))),
                     ("GET", "/route/wine/rollout", (200, rollout("Succeeded", 100, 3)))])
    done = script.run(watched())
    assert done.succeeded and done.finished
    assert [(s.completed, s.total, s.done) for s in steps] == [
        (10, 100, False), (25, 100, False), (100, 100, True)]
    assert steps[0].detail["phase"] == "Progressing" and steps[0].throttle > 0
    assert steps[-1].text == ("wine: Succeeded at step 3 of 3, canary wine-v2 100%, 0/3 "
                              "failed checks: Succeeded message")


def test_watch_gives_up_after_its_timeout():
    script = Script([("GET", "/route/wine/rollout", (200, rollout()))])
    with pytest.raises(errors.WaitTimeout, match="has not finished after 0s"):
        script.run(_ops.watch_rollout("wine", timeout=0))


def test_a_rollout_prints_where_it_is_and_its_last_judgement():
    text = str(Rollout(rollout()))
    assert text.splitlines()[:4] == [
        "route wine: canary wine-v2 over stable wine-v1, Inconclusive at step 1 of 3",
        "  weights    wine-v1 90%, wine-v2 10%",
        "  checks     0 of 3 failed; judged every 30s; the step fails at "
        "2026-12-05T10:30:00Z unless it passes",
        "  message    Inconclusive message"]
    assert "last judgement at 2026-12-05T10:01:00Z: inconclusive" in text
    table = text.split("inconclusive\n", 1)[1].splitlines()
    assert table[0].split() == ["METRIC", "VERDICT", "CANARY", "STABLE", "BOUND", "P-VALUE",
                                "SAMPLES"]
    assert table[1].split() == ["error-rate", "pass", "0%", "0.5%", "1%", "0.8", "60/540"]
    assert table[2].split() == ["latency-p99", "pass", "0.0041s", "0.0039s", "0.00468s",
                                "0.3", "60/256"]
    assert table[3].split() == ["quality-mae", "inconclusive", "0.41", "-", "-", "-", "12/0"]
    frame = Rollout(rollout()).frame()
    assert list(frame["canaryWeight"]) == [10] and str(frame["at"].dt.tz) == "UTC"


def test_the_route_table_shows_a_rollouts_phase_and_step():
    route = {"id": "wine", "spec": {"urlPrefix": "/custom/wine", "modelDeployments": []},
             "status": {"state": "Ready", "rollout": rollout("Progressing", 25, 2)}}
    assert route_row(route)["ROLLOUT"] == "Progressing 2/3"
    assert route_row({"id": "x", "spec": {}, "status": {}})["ROLLOUT"] == ""


def test_an_update_without_analysis_removes_it_and_set_weights_leaves_a_rollout_alone():
    body = _ops.route_body("wine", "/custom/wine", {"wine-v1": 100}, {})
    script = Script([("PUT", "/model/route", (200, body))])
    script.run(_ops.write_route(body, create=False))
    assert script.sent[0].json["spec"]["analysis"] is None  # a PUT replaces the whole spec
    script = Script([("POST", "/model/route", (201, body))])
    script.run(_ops.write_route(body, create=True))
    assert "analysis" not in script.sent[0].json["spec"]
    analysed = {**body, "spec": {**body["spec"], "analysis": {"canary": "wine-v1"}}}
    script = Script([("GET", "/route/wine", (200, analysed))])
    with pytest.raises(ValueError, match="belong to its canary rollout"):
        script.run(_ops.set_weights("wine", {"wine-v1": 100}))
    assert Route(analysed).targets == {"wine-v1": 100}
