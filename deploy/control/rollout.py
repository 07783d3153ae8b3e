"""The canary rollout as a state machine: pure transitions over a frozen ``RolloutState``.

The driver (reconciler clock, store, route weights) calls these; nothing here does I/O or reads
a clock. ``now`` is a timezone-aware wall-clock ``datetime``: the state outlives a restart
and its times bound the records a judgement reads, so a monotonic clock would not do.

A driver's loop, per route with ``spec.analysis``::

    state, weights = sync(spec, stored_state, now)   # start, or restart on a changed spec
    if due(spec, state, now):
        since, until = window(state, now)             # collect WindowData over this span
        state, weights = advance(spec, state, judge(spec, data), now)
    # store state.to_dict(); when weights is not None, set the route's weights to it

Manual control (``promote``, ``abort``, ``pause``, ``resume``) is in ``rollout_manual.py``.

Phases: ``Progressing`` and ``Inconclusive`` (the last judgement lacked samples) are active;
``Paused`` waits for ``resume``; ``Succeeded`` (canary 100) and ``Failed`` (stable 100) are
final. Decisions of ``advance``:

- pass: the next step's weight, or after the last step the canary gets 100 (``Succeeded``);
- fail: ``failedChecks`` + 1 (counted over the whole rollout); at ``threshold`` the weights go
  back to stable 100 and the phase is ``Failed``, the message naming the failing metrics with
  their canary and stable figures and bounds;
- inconclusive: the step waits (phase ``Inconclusive``, the message says what is missing);
- a step that has not passed ``progressDeadline`` after it began (time spent paused does not
  count) fails the rollout and restores stable 100.

Each step is judged over everything since it began (``window``), so samples accumulate while
a step waits instead of restarting every interval, and a late label still counts at the next
judgement of its step (quality samples are credited to the prediction's time). A new step
starts a new window because the canary's share of load changed. A spec change (canary, steps,
metrics, ...; not the route's weights, which the rollout itself moves) restarts the rollout.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from .analysis import AnalysisSpec
from .durations import format_duration
from .rollout_state import (
    ACTIVE,
    INCONCLUSIVE_PHASE,
    PROGRESSING,
    SUCCEEDED,
    RolloutState,
    Weights,
    check_time,
    rolled_back,
    route_weights,
    spec_hash,
    step_label,
)
from .verdicts import FAIL, INCONCLUSIVE, PASS, Judgement

__all__ = ["advance", "deadline", "due", "spec_hash", "start", "sync", "window"]


def start(spec: AnalysisSpec, now: datetime) -> tuple[RolloutState, Weights]:
    """A new rollout at its first step."""
    check_time(now)
    weight = spec.step_weights[0]
    state = RolloutState(
        phase=PROGRESSING,
        step=0,
        canary_weight=weight,
        failed_checks=0,
        started_at=now,
        step_started_at=now,
        spec_hash=spec_hash(spec),
        message=f"{step_label(spec, 0)}: canary {spec.canary} at {weight}%, judged every "
        f"{format_duration(spec.interval)}",
    )
    return state, route_weights(spec, state)


def sync(
    spec: AnalysisSpec,
    state: RolloutState | None,
    now: datetime,
) -> tuple[RolloutState, Weights | None]:
    """The stored state if it was made for this spec, else a (re)started rollout."""
    if state is None or state.spec_hash != spec_hash(spec):
        return start(spec, now)
    return state, None


def deadline(spec: AnalysisSpec, state: RolloutState) -> datetime:
    """When the current step fails if it has not passed (paused time moves it later)."""
    return state.step_started_at + timedelta(seconds=spec.progress_deadline + state.paused_seconds)


def due(spec: AnalysisSpec, state: RolloutState, now: datetime) -> bool:
    """An active rollout whose last judgement (or step start) is an interval ago or more."""
    check_time(now)
    if state.phase not in ACTIVE:
        return False
    last = state.last_judged_at or state.step_started_at
    return now - last >= timedelta(seconds=spec.interval)


def window(state: RolloutState, now: datetime) -> tuple[datetime, datetime]:
    """The span to collect a judgement's data for: from the step's start until ``now``."""
    check_time(now)
    return state.step_started_at, now


def advance(
    spec: AnalysisSpec,
    state: RolloutState,
    judgement: Judgement,
    now: datetime,
) -> tuple[RolloutState, Weights | None]:
    """Apply a judgement made at ``now``; ``weights`` is set when the route must change.

    A state that is not active (paused meanwhile, or finished) is returned unchanged.
    """
    check_time(now)
    if state.phase not in ACTIVE:
        return state, None
    judged = replace(state, last_judged_at=now, last_judgement=judgement.to_dict())
    if judgement.verdict == PASS:
        return _passed(spec, judged, now)
    if judgement.verdict == FAIL:
        judged = replace(judged, failed_checks=judged.failed_checks + 1)
        if judged.failed_checks >= spec.threshold:
            return rolled_back(
                spec,
                judged,
                f"rolled back to {spec.stable} after "
                f"{judged.failed_checks} failed checks: {judgement.summary()}",
            )
    if now >= deadline(spec, judged):
        return rolled_back(
            spec,
            judged,
            f"no decision within progressDeadline "
            f"{format_duration(spec.progress_deadline)} at "
            f"{step_label(spec, judged.step)}; rolled back to {spec.stable}; last "
            f"judgement {judgement.verdict}: {judgement.summary()}",
        )
    if judgement.verdict == INCONCLUSIVE:
        return replace(
            judged,
            phase=INCONCLUSIVE_PHASE,
            message=f"{step_label(spec, judged.step)} waits for samples: {judgement.summary()}",
        ), None
    return replace(
        judged,
        phase=PROGRESSING,
        message=f"failed check {judged.failed_checks} of {spec.threshold} at "
        f"{step_label(spec, judged.step)}: {judgement.summary()}",
    ), None


def _passed(
    spec: AnalysisSpec,
    state: RolloutState,
    now: datetime,
) -> tuple[RolloutState, Weights]:
    step = state.step + 1
    if step == len(spec.step_weights):
        done = replace(
            state,
            phase=SUCCEEDED,
            step=step,
            canary_weight=100,
            message=f"promoted: all {step} steps passed; canary {spec.canary} at "
            f"100%, stable {spec.stable} at 0%",
        )
        return done, route_weights(spec, done)
    weight = spec.step_weights[step]
    moved = replace(
        state,
        phase=PROGRESSING,
        step=step,
        canary_weight=weight,
        step_started_at=now,
        paused_seconds=0.0,
        message=f"{step_label(spec, state.step)} passed; {step_label(spec, step)}: canary "
        f"{spec.canary} at {weight}%",
    )
    return moved, route_weights(spec, moved)
