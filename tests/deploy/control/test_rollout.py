"""The rollout state machine over a simulated clock, driven like the reconciler will drive it."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from deploy.control.analysis import AnalysisSpec, parse_analysis
from deploy.control.judge import judge
from deploy.control.rollout import advance, deadline, due, spec_hash, start, sync, window
from deploy.control.rollout_manual import abort, pause, promote, resume
from deploy.control.rollout_state import (
    FAILED,
    FINISHED,
    INCONCLUSIVE_PHASE,
    PAUSED,
    PHASES,
    PROGRESSING,
    SUCCEEDED,
    RolloutError,
    RolloutState,
    Weights,
    route_weights,
)
from deploy.control.verdicts import FAIL, INCONCLUSIVE, PASS, VariantData, WindowData

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TARGETS = ["wine-v1", "wine-v2"]
STABLE, CANARY = "wine-v1", "wine-v2"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def spec_of(**fields: object) -> AnalysisSpec:
    raw = {
        "canary": CANARY,
        "interval": "30s",
        "stepWeights": [10, 25, 50],
        "threshold": 3,
        "minSamples": 50,
        "progressDeadline": "30m",
        "metrics": [
            {"name": "error-rate", "max": 1},
            {"name": "latency-p99", "maxIncrease": 20},
        ],
    }
    return parse_analysis({**raw, **fields}, TARGETS)


@dataclass(frozen=True)
class Traffic:
    """A simulated route: ``rps`` requests a second split by the weights; the canary's
    latencies are ``slowdown`` times the stable's, and ``canary_errors`` of its answers 5xx.
    The data of a window depends only on the window and the weights, like records would."""

    rps: float = 40.0
    slowdown: float = 1.0
    canary_errors: float = 0.0
    seed: int = 1

    def window(self, weights: Weights, since: datetime, until: datetime) -> WindowData:
        seconds = (until - since).total_seconds()
        rng = np.random.default_rng([self.seed, int(since.timestamp()), int(until.timestamp())])

        def variant(weight: int, scale: float, error_rate: float) -> VariantData:
            n = int(self.rps * seconds * weight / 100)
            latencies = rng.lognormal(np.log(0.05), 0.3, n) * scale
            return VariantData(
                requests=n, errors=int(rng.binomial(n, error_rate)), latencies=latencies
            )

        return WindowData(
            variant(weights[CANARY], self.slowdown, self.canary_errors),
            variant(weights[STABLE], 1.0, 0.002),
        )


@dataclass
class Driver:
    """What the lead's reconciler does each tick, with a log of what it would do to the route."""

    spec: AnalysisSpec
    traffic: Traffic
    state: RolloutState
    now: datetime
    tick: float = 5.0

    def __post_init__(self) -> None:
        self.weight_changes: list[tuple[float, Weights]] = []
        self.verdicts: list[tuple[float, str]] = []
        self.windows: list[tuple[datetime, datetime]] = []

    def run(self, seconds: float) -> RolloutState:
        end = self.now + timedelta(seconds=seconds)
        while self.now < end and self.state.phase not in FINISHED:
            self.now += timedelta(seconds=self.tick)
            self.step()
        return self.state

    def step(self) -> None:
        if not due(self.spec, self.state, self.now):
            return
        since, until = window(self.state, self.now)
        self.windows.append((since, until))
        data = self.traffic.window(route_weights(self.spec, self.state), since, until)
        judgement = judge(self.spec, data)
        self.state, weights = advance(self.spec, self.state, judgement, self.now)
        elapsed = (self.now - T0).total_seconds()
        self.verdicts.append((elapsed, judgement.verdict))
        if weights is not None:
            self.weight_changes.append((elapsed, weights))


def started(spec: AnalysisSpec, traffic: Traffic | None = None) -> Driver:
    state, weights = start(spec, T0)
    assert weights == {STABLE: 90, CANARY: 10}
    return Driver(spec, traffic or Traffic(), state, T0)


def test_the_phases_are_exactly_the_five_of_the_issue() -> None:
    assert set(PHASES) == {"Progressing", "Paused", "Inconclusive", "Succeeded", "Failed"}


def test_start() -> None:
    spec = spec_of()
    state, weights = start(spec, T0)
    assert (state.phase, state.step, state.canary_weight, state.failed_checks) == (
        PROGRESSING,
        0,
        10,
        0,
    )
    assert state.started_at == state.step_started_at == T0 and state.last_judged_at is None
    assert weights == route_weights(spec, state) == {STABLE: 90, CANARY: 10}
    assert sum(weights.values()) == 100
    assert state.message == "step 1 of 3: canary wine-v2 at 10%, judged every 30s"


def test_due_once_an_interval_has_passed() -> None:
    spec = spec_of()
    state, _ = start(spec, T0)
    assert not due(spec, state, at(29.9))
    assert due(spec, state, at(30))
    judged = replace(state, last_judged_at=at(30))
    assert not due(spec, judged, at(59)) and due(spec, judged, at(60))


def test_a_good_canary_is_promoted_through_every_step() -> None:
    driver = started(spec_of())
    state = driver.run(600)
    assert driver.weight_changes == [
        (30.0, {STABLE: 75, CANARY: 25}),
        (60.0, {STABLE: 50, CANARY: 50}),
        (90.0, {STABLE: 0, CANARY: 100}),
    ]
    assert driver.verdicts == [(30.0, PASS), (60.0, PASS), (90.0, PASS)]
    assert (state.phase, state.step, state.canary_weight, state.failed_checks) == (
        SUCCEEDED,
        3,
        100,
        0,
    )
    assert state.message == (
        "promoted: all 3 steps passed; canary wine-v2 at 100%, stable wine-v1 at 0%"
    )
    assert [since for since, _ in driver.windows] == [at(0), at(30), at(60)]
    assert state.last_judgement is not None and state.last_judgement["verdict"] == PASS
    assert not due(driver.spec, state, at(10_000))


def test_intermediate_messages_name_the_step_and_weight() -> None:
    driver = started(spec_of())
    driver.run(30)
    assert driver.state.message == "step 1 of 3 passed; step 2 of 3: canary wine-v2 at 25%"
    assert driver.state.step_started_at == at(30)


def test_a_slow_canary_is_rolled_back_after_threshold_failures() -> None:
    driver = started(spec_of(), Traffic(slowdown=2.0))
    driver.run(30)
    assert (driver.state.phase, driver.state.failed_checks) == (PROGRESSING, 1)
    assert driver.state.message.startswith("failed check 1 of 3 at step 1 of 3: latency-p99: ")
    state = driver.run(600)
    assert driver.verdicts == [(30.0, FAIL), (60.0, FAIL), (90.0, FAIL)]
    assert driver.weight_changes == [(90.0, {STABLE: 100, CANARY: 0})]
    assert (state.phase, state.canary_weight, state.failed_checks) == (FAILED, 0, 3)
    latency = next(m for m in state.last_judgement["metrics"] if m["name"] == "latency-p99")
    assert state.message.startswith(
        "rolled back to wine-v1 after 3 failed checks: latency-p99: "
        f"canary {latency['canary']:.4g}s, stable "
        f"{latency['stable']:.4g}s, bound {latency['bound']:.4g}s"
    )
    assert "error-rate" not in state.message, "only the failing metric is named"


def test_a_canary_answering_errors_is_rolled_back_naming_the_ceiling() -> None:
    driver = started(spec_of(threshold=1), Traffic(canary_errors=0.2))
    state = driver.run(600)
    assert state.phase == FAILED and driver.weight_changes == [(30.0, {STABLE: 100, CANARY: 0})]
    assert "error-rate: canary " in state.message and "over the ceiling 1%" in state.message


def test_failed_checks_count_over_the_whole_rollout() -> None:
    spec = spec_of()
    state, _ = start(spec, T0)
    fail = judge(spec, Traffic(slowdown=2.0).window({STABLE: 90, CANARY: 10}, at(0), at(30)))
    good = judge(spec, Traffic().window({STABLE: 90, CANARY: 10}, at(0), at(30)))
    assert (fail.verdict, good.verdict) == (FAIL, PASS)
    state, _ = advance(spec, state, fail, at(30))
    state, weights = advance(spec, state, good, at(60))
    assert (state.step, state.failed_checks, weights) == (1, 1, {STABLE: 75, CANARY: 25})
    state, _ = advance(spec, state, fail, at(90))
    state, weights = advance(spec, state, fail, at(120))
    assert (state.phase, state.failed_checks, weights) == (FAILED, 3, {STABLE: 100, CANARY: 0})


def test_an_inconclusive_step_waits_and_accumulates_samples() -> None:
    # 2 requests/s, canary at 10 %: 50 canary samples only after 250 s.
    driver = started(spec_of(), Traffic(rps=2.0))
    driver.run(240)
    assert driver.state.phase == INCONCLUSIVE_PHASE
    assert {v for _, v in driver.verdicts} == {INCONCLUSIVE}
    assert driver.state.message.startswith(
        "step 1 of 3 waits for samples: error-rate: needs 50 "
        "requests per variant, has 48 canary and 432 stable"
    )
    assert {since for since, _ in driver.windows} == {T0}, "the window grows from the step start"
    assert driver.weight_changes == []
    driver.run(30)
    assert driver.verdicts[-1] == (270.0, PASS)
    assert driver.weight_changes == [(270.0, {STABLE: 75, CANARY: 25})]
    assert driver.state.phase == PROGRESSING


def test_no_traffic_fails_at_the_progress_deadline() -> None:
    driver = started(spec_of(progressDeadline="5m"), Traffic(rps=0.5))
    driver.run(270)
    assert driver.state.phase == INCONCLUSIVE_PHASE
    state = driver.run(600)
    assert driver.verdicts[-1] == (300.0, INCONCLUSIVE)
    assert driver.weight_changes == [(300.0, {STABLE: 100, CANARY: 0})]
    assert (state.phase, state.canary_weight) == (FAILED, 0)
    assert state.message.startswith(
        "no decision within progressDeadline 5m at step 1 of 3; "
        "rolled back to wine-v1; last judgement inconclusive: "
        "error-rate: needs 50 requests per variant"
    )
    assert deadline(driver.spec, state) == at(300)


def test_the_deadline_counts_from_the_step_start() -> None:
    spec = spec_of(progressDeadline="2m")
    state, _ = start(spec, T0)
    good = judge(spec, Traffic().window({STABLE: 90, CANARY: 10}, at(0), at(100)))
    state, _ = advance(spec, state, good, at(100))
    assert deadline(spec, state) == at(220)
    waiting = judge(spec, WindowData(VariantData(), VariantData()))
    state, weights = advance(spec, state, waiting, at(219))
    assert (state.phase, weights) == (INCONCLUSIVE_PHASE, None)
    state, weights = advance(spec, state, waiting, at(220))
    assert (state.phase, weights) == (FAILED, {STABLE: 100, CANARY: 0})


def test_pause_stops_judging_and_the_deadline_clock() -> None:
    spec = spec_of(progressDeadline="5m")
    driver = started(spec, Traffic(rps=0.5))
    driver.run(60)
    driver.state, weights = pause(spec, driver.state, driver.now)
    assert (driver.state.phase, weights, driver.state.paused_at) == (PAUSED, None, at(60))
    assert driver.state.message == "paused by hand at step 1 of 3, canary at 10%"
    judged = len(driver.verdicts)
    driver.run(400)
    assert len(driver.verdicts) == judged and not due(spec, driver.state, driver.now)
    ignored = judge(spec, WindowData(VariantData(), VariantData()))
    assert advance(spec, driver.state, ignored, driver.now) == (driver.state, None)
    driver.state, weights = resume(spec, driver.state, driver.now)
    assert (driver.state.phase, weights, driver.state.paused_at) == (PROGRESSING, None, None)
    assert driver.state.paused_seconds == 400
    assert deadline(spec, driver.state) == at(300 + 400)
    assert driver.state.message == "resumed by hand at step 1 of 3, canary at 10%"
    driver.run(235)
    assert driver.state.phase == INCONCLUSIVE_PHASE
    driver.run(60)
    # judged every 30 s from the resume at 460 s: the first judgement past 700 s fails it
    assert driver.state.phase == FAILED and driver.weight_changes[-1][0] == 705.0


def test_manual_promote() -> None:
    spec = spec_of()
    state, _ = start(spec, T0)
    done, weights = promote(spec, state, at(5))
    assert (done.phase, done.step, done.canary_weight) == (SUCCEEDED, 3, 100)
    assert weights == {STABLE: 0, CANARY: 100}
    assert done.message == (
        "promoted by hand at step 1 of 3 (Progressing): canary wine-v2 at "
        "100%, stable wine-v1 at 0%"
    )
    with pytest.raises(RolloutError, match="already succeeded"):
        promote(spec, done, at(6))


def test_manual_abort() -> None:
    spec = spec_of()
    state, _ = start(spec, T0)
    failed, weights = abort(spec, state, at(5))
    assert (failed.phase, failed.canary_weight, weights) == (FAILED, 0, {STABLE: 100, CANARY: 0})
    assert failed.message == "aborted by hand at step 1 of 3: rolled back to wine-v1"
    with pytest.raises(RolloutError, match="already finished"):
        abort(spec, failed, at(6))
    paused, _ = pause(spec, state, at(5))
    failed, _ = abort(spec, paused, at(6))
    assert failed.phase == FAILED and failed.paused_at is None


def test_a_failed_rollout_may_still_be_promoted_by_hand() -> None:
    spec = spec_of()
    state, _ = start(spec, T0)
    failed, _ = abort(spec, state, at(5))
    done, weights = promote(spec, failed, at(6))
    assert done.phase == SUCCEEDED and weights == {STABLE: 0, CANARY: 100}
    assert "(Failed)" in done.message


@pytest.mark.parametrize(
    ("action", "phase", "match"),
    [
        (resume, PROGRESSING, "only a paused rollout can be resumed; this one is Progressing"),
        (resume, SUCCEEDED, "only a paused rollout can be resumed; this one is Succeeded"),
        (resume, FAILED, "only a paused rollout can be resumed"),
        (pause, PAUSED, "already paused"),
        (pause, SUCCEEDED, "has finished"),
        (pause, FAILED, "has finished"),
        (abort, SUCCEEDED, "already finished"),
    ],
)
def test_actions_that_make_no_sense_are_refused(action, phase: str, match: str) -> None:
    spec = spec_of()
    state, _ = start(spec, T0)
    with pytest.raises(RolloutError, match=match):
        action(spec, replace(state, phase=phase), at(1))


def test_judgements_of_a_finished_rollout_change_nothing() -> None:
    spec = spec_of()
    state, _ = start(spec, T0)
    done, _ = promote(spec, state, at(1))
    waiting = judge(spec, WindowData(VariantData(), VariantData()))
    assert advance(spec, done, waiting, at(10_000)) == (done, None)


def test_a_restart_continues_identically() -> None:
    # a borderline canary (20 % slower, 20 % allowed): waits, fails, passes in turn
    spec = spec_of(progressDeadline="10m", threshold=5)
    traffic = Traffic(rps=3.0, slowdown=1.2, seed=2)
    live = started(spec, traffic)
    live.run(200)
    assert live.state.failed_checks == 1 and live.state.step_started_at == at(0)
    stored = json.loads(json.dumps(live.state.to_dict(), allow_nan=False))
    restored = Driver(spec, traffic, RolloutState.from_dict(stored), live.now)
    before = len(live.weight_changes)
    assert restored.state == live.state
    assert sync(spec, restored.state, restored.now) == (restored.state, None)
    for _ in range(200):
        live.run(5)
        restored.run(5)
        assert restored.state.to_dict() == live.state.to_dict()
    assert restored.weight_changes == live.weight_changes[before:]
    assert len(restored.weight_changes) >= 1 and live.state.phase in FINISHED
    assert {PASS, FAIL, INCONCLUSIVE} <= {v for _, v in restored.verdicts}


def test_a_paused_state_survives_a_restart() -> None:
    spec = spec_of()
    state, _ = start(spec, T0)
    paused, _ = pause(spec, state, at(12.5))
    back = RolloutState.from_dict(json.loads(json.dumps(paused.to_dict())))
    assert back == paused and back.paused_at == at(12.5)
    assert resume(spec, back, at(20))[0] == resume(spec, paused, at(20))[0]


def test_state_dict_shape() -> None:
    state, _ = start(spec_of(), T0)
    out = state.to_dict()
    assert out["startedAt"] == "2025-03-01T12:00:00Z" and out["lastJudgedAt"] is None
    assert {
        "phase",
        "step",
        "canaryWeight",
        "failedChecks",
        "startedAt",
        "stepStartedAt",
        "lastJudgedAt",
        "message",
        "lastJudgement",
        "specHash",
    } <= set(out)


def test_sync_starts_keeps_or_restarts() -> None:
    spec = spec_of()
    fresh, weights = sync(spec, None, T0)
    assert fresh.phase == PROGRESSING and weights == {STABLE: 90, CANARY: 10}
    moved = replace(fresh, step=2, canary_weight=50, failed_checks=2)
    assert sync(spec, moved, at(100)) == (moved, None)
    changed = spec_of(stepWeights=[5, 50])
    restarted, weights = sync(changed, moved, at(100))
    assert (restarted.step, restarted.canary_weight, restarted.failed_checks) == (0, 5, 0)
    assert restarted.started_at == at(100) and weights == {STABLE: 95, CANARY: 5}


def test_the_spec_hash_follows_the_analysis_not_the_route_weights() -> None:
    spec = spec_of()
    assert spec_hash(spec) == spec_hash(spec_of())
    assert spec_hash(spec) != spec_hash(spec_of(threshold=4))
    assert spec_hash(spec) != spec_hash(spec_of(metrics=[{"name": "error-rate", "max": 2}]))
    swapped = parse_analysis({**spec.to_dict(), "canary": STABLE}, TARGETS)
    assert spec_hash(swapped) != spec_hash(spec)


def test_stored_state_errors() -> None:
    out = start(spec_of(), T0)[0].to_dict()
    with pytest.raises(ValueError, match="lacks specHash"):
        RolloutState.from_dict({k: v for k, v in out.items() if k != "specHash"})
    with pytest.raises(ValueError, match="unknown phase 'Running'"):
        RolloutState.from_dict({**out, "phase": "Running"})
    with pytest.raises(ValueError, match="timezone-aware"):
        RolloutState.from_dict({**out, "startedAt": "2025-03-01T12:00:00"})


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        start(spec_of(), datetime(2025, 3, 1, 12, 0))
