"""The rollout driver (``deploy.control.rollouts``) over a real store and a real live-join
index, with a simulated clock: what a route's rollout does pass after pass, restarts included.

Records go into the index as the joiner would put them (``response_body`` with the route and
deployment, feedback with labels); the driver reads them with ``feedback.variant_samples``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from deploy.control.rollouts import NoRollout, RolloutDriver, unavailable_reason
from deploy.control.routes import parse_route
from deploy.control.store import Conflict, Store
from feedback import JoinLimits, QualityIndex
from tests.feedback.records import T0, T0_EPOCH, feedback, prediction

ROUTE = "wine"
STABLE, CANARY = "wine-v1", "wine-v2"
ANALYSIS = {
    "canary": CANARY,
    "interval": "30s",
    "stepWeights": [10, 50],
    "threshold": 2,
    "minSamples": 20,
    "progressDeadline": "5m",
    "metrics": [
        {"name": "error-rate", "max": 5},
        {"name": "latency-p99", "maxIncrease": 50},
        {"name": "quality", "metric": "mae", "maxIncrease": 10},
    ],
}
ids = itertools.count()


@dataclass
class Join:
    """What the driver reads of ``feedback.Joiner``: its index and whether it is complete."""

    index: QualityIndex = field(default_factory=lambda: QualityIndex({}, JoinLimits()))
    complete: bool = True


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = T0 + timedelta(seconds=seconds)


def route_doc(analysis: dict | None = ANALYSIS, weights: tuple[int, int] = (100, 0)) -> dict:
    spec = {"urlPrefix": "/custom/wine", "modelDeployments": [
        {"mdName": STABLE, "weight": weights[0]}, {"mdName": CANARY, "weight": weights[1]}]}
    if analysis is not None:
        spec["analysis"] = analysis
    return {"id": ROUTE, "spec": spec}


def route(analysis: dict | None = ANALYSIS, weights: tuple[int, int] = (100, 0)):
    return parse_route(route_doc(analysis, weights), lambda _id: True)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


@pytest.fixture
def join() -> Join:
    j = Join()
    j.index.models.add("wine")
    return j


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def driver(store, join, clock) -> RolloutDriver:
    return RolloutDriver(store, join, clock=clock, unavailable="")


def traffic(join: Join, second: float, dep: str, n: int, error: float = 0.5,
            status: int = 200, upstream_ms: float = 2.0, route_id: str = ROUTE) -> None:
    """``n`` answers of ``dep`` through the route at ``second`` (after T0), each labelled
    ``error`` away from its prediction (a 5xx answer has no prediction to label)."""
    for i in range(n):
        rid = f"r{next(ids)}"
        version = "1.0" if dep == STABLE else "2.0"
        join.index.add_prediction(prediction(
            rid, 5.0, seconds=second, dep=dep, version=version, status=status,
            route=route_id, upstream_ms=upstream_ms * (1 + (i % 5) / 10)))
        if status < 300:
            join.index.add_feedback(feedback(rid, {"truthful": 5.0 + error * (1 + i % 3) / 2},
                                             seconds=second + 1, version=version),
                                    now=T0_EPOCH + second + 1)


def both(join: Join, second: float, n: int = 30, **canary) -> None:
    traffic(join, second, STABLE, n)
    traffic(join, second, CANARY, n, **canary)


def weights(store: Store) -> dict[str, int]:
    return {t.md_name: t.weight for t in store.get_route(ROUTE).spec.model_deployments}


def state(store: Store) -> dict:
    stored = store.get_rollout(ROUTE)
    assert stored is not None
    return stored.state


def test_a_rollout_starts_at_its_first_step_and_sets_the_weights(store, driver):
    store.create_route(route())
    driver.tick()
    assert weights(store) == {STABLE: 90, CANARY: 10}
    got = state(store)
    assert (got["phase"], got["step"], got["canaryWeight"], got["failedChecks"]) == (
        "Progressing", 0, 10, 0)
    assert got["startedAt"] == "2026-11-25T10:00:00Z"
    [entry] = store.get_rollout(ROUTE).history
    assert (entry["phase"], entry["step"], entry["canaryWeight"]) == ("Progressing", 1, 10)


def test_passing_judgements_move_through_every_step_to_succeeded(store, driver, clock, join):
    store.create_route(route())
    driver.tick()
    both(join, 10)  # minute 0: the first step began at T0, so this minute is its window
    clock.at(30)
    driver.tick()
    assert weights(store) == {STABLE: 50, CANARY: 50}
    assert state(store)["step"] == 1 and state(store)["lastJudgement"]["verdict"] == "pass"
    # the second step began at 0:30: its window starts with minute 1
    both(join, 40)  # minute 0 again: not in this step's window
    clock.at(70)
    driver.tick()
    assert state(store)["step"] == 1 and state(store)["phase"] == "Inconclusive"
    assert "needs 20 requests per variant, has 0 canary" in state(store)["message"]
    both(join, 75)
    clock.at(100)
    driver.tick()
    got = state(store)
    assert (got["phase"], got["canaryWeight"]) == ("Succeeded", 100)
    assert weights(store) == {STABLE: 0, CANARY: 100}
    assert got["message"] == ("promoted: all 2 steps passed; canary wine-v2 at 100%, "
                              "stable wine-v1 at 0%")
    history = store.get_rollout(ROUTE).history
    assert [(h["phase"], h["canaryWeight"]) for h in history] == [
        ("Progressing", 10), ("Progressing", 50), ("Inconclusive", 50), ("Succeeded", 100)]
    clock.at(500)
    driver.tick()  # a finished rollout is left alone
    assert store.get_rollout(ROUTE).history == history


def test_a_worse_canary_is_rolled_back_after_threshold_failed_checks(store, driver, clock, join):
    store.create_route(route())
    driver.tick()
    both(join, 5, error=3.0)  # the canary misses by six times more
    clock.at(30)
    driver.tick()
    first = state(store)
    assert (first["phase"], first["failedChecks"], first["canaryWeight"]) == (
        "Progressing", 1, 10)
    verdicts = {m["name"]: m["verdict"] for m in first["lastJudgement"]["metrics"]}
    assert verdicts == {"error-rate": "pass", "latency-p99": "pass", "quality-mae": "fail"}
    clock.at(60)
    driver.tick()
    got = state(store)
    assert (got["phase"], got["failedChecks"], got["canaryWeight"]) == ("Failed", 2, 0)
    assert weights(store) == {STABLE: 100, CANARY: 0}
    assert got["message"].startswith("rolled back to wine-v1 after 2 failed checks: "
                                     "quality-mae: canary ")
    assert "bound" in got["message"] and "stable" in got["message"]


@pytest.mark.parametrize(("canary", "reason"), [
    ({"status": 500}, "error-rate: canary 100%, stable 0%, bound 5%: the canary is over the "
                      "ceiling 5%"),
    ({"upstream_ms": 20.0}, "latency-p99: canary 0.028s, stable 0.0028s, bound 0.0042s: "
                            "worse by"),
], ids=["answers 500", "ten times slower"])
def test_a_failing_or_slower_canary_is_rolled_back(store, driver, clock, join, canary, reason):
    store.create_route(route())
    driver.tick()
    both(join, 5, **canary)
    for second in (30, 60):
        clock.at(second)
        driver.tick()
    got = state(store)
    assert got["phase"] == "Failed" and weights(store) == {STABLE: 100, CANARY: 0}
    assert reason in got["message"]


def test_without_traffic_the_step_waits_and_fails_at_the_deadline(store, driver, clock):
    store.create_route(route())
    driver.tick()
    clock.at(30)
    driver.tick()
    assert state(store)["phase"] == "Inconclusive" and weights(store)[CANARY] == 10
    clock.at(299)
    driver.tick()
    assert state(store)["phase"] == "Inconclusive"
    clock.at(330)
    driver.tick()
    got = state(store)
    assert got["phase"] == "Failed" and weights(store) == {STABLE: 100, CANARY: 0}
    assert got["message"].startswith("no decision within progressDeadline 5m at step 1 of 2")


def test_a_new_driver_on_the_same_store_continues_at_the_step(store, join, clock, driver):
    """mlgate restarted: the state is in the store, the new process continues from it."""
    store.create_route(route())
    driver.tick()
    both(join, 10)
    clock.at(30)
    driver.tick()
    before = state(store)
    assert before["step"] == 1
    clock.at(45)
    again = RolloutDriver(store, Join(join.index, complete=False), clock=clock, unavailable="")
    again.tick()  # the join is still reading the bucket: nothing is judged
    assert state(store) == before
    again.source.complete = True
    both(join, 65)
    clock.at(95)
    again.tick()
    assert state(store)["phase"] == "Succeeded"
    assert state(store)["startedAt"] == before["startedAt"]


def test_a_changed_analysis_starts_the_rollout_again(store, driver, clock):
    store.create_route(route())
    driver.tick()
    clock.at(30)
    driver.tick()
    assert state(store)["phase"] == "Inconclusive"
    store.update_route(route({**ANALYSIS, "stepWeights": [20, 60]}))
    clock.at(40)
    driver.tick()
    got = state(store)
    assert (got["phase"], got["canaryWeight"], got["startedAt"]) == (
        "Progressing", 20, "2026-11-25T10:00:40Z")
    assert len(store.get_rollout(ROUTE).history) == 1
    assert weights(store) == {STABLE: 80, CANARY: 20}


def test_weights_written_over_the_rollouts_are_put_back_on_the_next_pass(store, driver):
    store.create_route(route())
    driver.tick()
    store.update_route(route(weights=(30, 70)))
    driver.tick()
    assert weights(store) == {STABLE: 90, CANARY: 10}


def test_a_route_that_loses_its_analysis_loses_its_rollout_and_keeps_its_weights(store, driver):
    store.create_route(route())
    driver.tick()
    store.update_route(route(None, weights=(90, 10)))
    assert store.get_rollout(ROUTE) is None
    driver.tick()
    assert weights(store) == {STABLE: 90, CANARY: 10} and store.list_rollouts() == {}


def test_a_write_for_an_analysis_that_changed_meanwhile_is_refused(store):
    store.create_route(route())
    stale = {**ANALYSIS, "threshold": 9}
    assert not store.save_rollout(ROUTE, stale, {"phase": "x"}, [], {CANARY: 50})
    assert store.get_rollout(ROUTE) is None and weights(store) == {STABLE: 100, CANARY: 0}
    assert not store.save_rollout("nope", ANALYSIS, {}, [], {})


def test_a_deleted_route_takes_its_rollout_along(store, driver):
    store.create_route(route())
    driver.tick()
    store.delete_route(ROUTE)
    assert store.list_rollouts() == {}


def test_manual_control_pause_resume_promote_abort(store, driver, clock, join):
    store.create_route(route())
    driver.tick()
    clock.at(10)
    doc = driver.act(ROUTE, "pause")
    assert (doc["phase"], doc["deadline"]) == ("Paused", None)
    both(join, 20, error=3.0)
    clock.at(120)
    driver.tick()
    assert state(store)["phase"] == "Paused"  # nothing is judged while paused
    with pytest.raises(Conflict, match="already paused"):
        driver.act(ROUTE, "pause")
    clock.at(130)
    doc = driver.act(ROUTE, "resume")
    # 2 minutes paused move the deadline on by as much
    assert (doc["phase"], doc["deadline"]) == ("Progressing", "2026-11-25T10:07:00Z")
    doc = driver.act(ROUTE, "promote")
    assert (doc["phase"], doc["canaryWeight"], doc["step"]) == ("Succeeded", 100, 2)
    assert weights(store) == {STABLE: 0, CANARY: 100}
    assert doc["message"].startswith("promoted by hand at step 1 of 2")
    assert [h["phase"] for h in doc["history"]] == [
        "Progressing", "Paused", "Progressing", "Succeeded"]
    with pytest.raises(Conflict, match="already finished"):
        driver.act(ROUTE, "abort")


def test_abort_restores_stable_and_promote_overrides_a_failed_rollout(store, driver):
    store.create_route(route())
    doc = driver.act(ROUTE, "abort")  # before the first pass: the rollout starts, then ends
    assert doc["phase"] == "Failed" and weights(store) == {STABLE: 100, CANARY: 0}
    assert doc["message"] == "aborted by hand at step 1 of 2: rolled back to wine-v1"
    assert driver.act(ROUTE, "promote")["canaryWeight"] == 100


def test_manual_control_of_a_route_without_analysis_is_404(store, driver):
    store.create_route(route(None))
    with pytest.raises(NoRollout, match=r"has no spec\.analysis"):
        driver.act(ROUTE, "promote")


def test_a_driver_that_cannot_judge_keeps_the_weights_and_says_why(store, clock, join):
    store.create_route(route())
    driver = RolloutDriver(store, None, clock=clock)
    assert "quality.enabled: false" in driver.unavailable
    driver.tick()
    both(join, 10)
    clock.at(60)
    driver.tick()
    got = state(store)
    assert got["phase"] == "Progressing" and got["lastJudgedAt"] is None
    assert unavailable_reason(join) == ""  # numpy and scipy are installed here


def test_metrics_name_every_route_target_phase_and_verdict(store, driver, clock, join):
    store.create_route(route())
    driver.tick()
    both(join, 10, error=3.0)
    clock.at(30)
    driver.tick()
    registry = CollectorRegistry()
    registry.register(driver.metrics)
    text = generate_latest(registry).decode()
    assert 'mlgate_rollout_weight{deployment="wine-v2",route="wine"} 10.0' in text
    assert 'mlgate_rollout_weight{deployment="wine-v1",route="wine"} 90.0' in text
    assert 'mlgate_rollout_phase{phase="Progressing",route="wine"} 1.0' in text
    assert 'mlgate_rollout_phase{phase="Failed",route="wine"} 0.0' in text
    assert ('mlgate_rollout_judgements_total{metric="quality-mae",route="wine",'
            'verdict="fail"} 1.0') in text
    assert ('mlgate_rollout_judgements_total{metric="error-rate",route="wine",'
            'verdict="pass"} 1.0') in text
    assert ('mlgate_rollout_judgements_total{metric="latency-p99",route="wine",'
            'verdict="fail"} 0.0') in text
    store.delete_route(ROUTE)
    driver.tick()
    assert "mlgate_rollout_weight{" not in generate_latest(registry).decode()


def test_only_this_routes_requests_are_judged(store, driver, clock, join):
    """The stable target also serves other routes; their traffic is not this rollout's."""
    store.create_route(route())
    driver.tick()
    traffic(join, 10, CANARY, 30)
    traffic(join, 10, STABLE, 30, route_id="other-route")
    clock.at(30)
    driver.tick()
    assert state(store)["phase"] == "Inconclusive"
    assert "has 30 canary and 0 stable" in state(store)["message"]


class NoReplicas:
    """A runtime with nothing to run (the reconciler asks it what it knows)."""

    autoscales = True

    def known(self) -> set[str]:
        return set()


async def test_the_reconcilers_passes_drive_the_rollouts_and_publish_their_weights(store, join):
    """Wired as ``mlgate up`` wires it: the reconciler's loop runs the driver, and the
    weights it stores reach the gateway's route table (pushed to every worker from there)."""
    from deploy.control.autoscaler import ScalingPolicy
    from deploy.control.reconciler import Reconciler
    from gateway import RouteTable

    table = RouteTable()
    driver = RolloutDriver(store, join, unavailable="")
    reconciler = Reconciler(store, NoReplicas(), table, ScalingPolicy(), 0.05, rollouts=driver)
    task = asyncio.create_task(reconciler.run())
    try:
        store.create_route(route())

        async def published() -> dict[str, int]:
            for _ in range(100):
                routes = {r.id: r for r in table.routes()}
                if ROUTE in routes and routes[ROUTE].targets[1].weight == 10:
                    return {t.deployment_id: t.weight for t in routes[ROUTE].targets}
                await asyncio.sleep(0.02)
            raise AssertionError(f"the table has {table.routes()}")

        assert await published() == {STABLE: 90, CANARY: 10}
        assert state(store)["phase"] == "Progressing"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
