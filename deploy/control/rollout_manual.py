"""Manual control of a canary rollout: promote, abort, pause, resume (pure).

Each takes ``(spec, state, now)`` and returns ``(state, weights | None)`` like ``advance``,
or raises ``RolloutError`` for an action that makes no sense in the state's phase.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from .analysis import AnalysisSpec
from .rollout_state import (
    FINISHED,
    PAUSED,
    PROGRESSING,
    SUCCEEDED,
    RolloutError,
    RolloutState,
    Weights,
    check_time,
    rolled_back,
    route_weights,
    step_label,
)


def promote(
    spec: AnalysisSpec,
    state: RolloutState,
    now: datetime,
) -> tuple[RolloutState, Weights]:
    """By hand: the canary gets 100 now (also after a Failed rollout: an explicit override)."""
    check_time(now)
    if state.phase == SUCCEEDED:
        raise RolloutError("the rollout has already succeeded: the canary has 100")
    done = replace(
        state,
        phase=SUCCEEDED,
        step=len(spec.step_weights),
        canary_weight=100,
        paused_at=None,
        message=f"promoted by hand at {step_label(spec, state.step)} ({state.phase}): "
        f"canary {spec.canary} at 100%, stable {spec.stable} at 0%",
    )
    return done, route_weights(spec, done)


def abort(
    spec: AnalysisSpec,
    state: RolloutState,
    now: datetime,
) -> tuple[RolloutState, Weights]:
    """By hand: back to stable 100, phase Failed."""
    check_time(now)
    if state.phase in FINISHED:
        raise RolloutError(
            f"the rollout has already finished ({state.phase}): nothing to "
            "abort; change the spec to start a new one"
        )
    return rolled_back(
        spec,
        replace(state, paused_at=None),
        f"aborted by hand at {step_label(spec, state.step)}: rolled back to {spec.stable}",
    )


def pause(
    spec: AnalysisSpec,
    state: RolloutState,
    now: datetime,
) -> tuple[RolloutState, None]:
    """By hand: keep the current weights, judge nothing, stop the deadline's clock."""
    check_time(now)
    if state.phase == PAUSED:
        raise RolloutError("the rollout is already paused")
    if state.phase in FINISHED:
        raise RolloutError(f"the rollout has finished ({state.phase}): nothing to pause")
    return replace(
        state,
        phase=PAUSED,
        paused_at=now,
        message=f"paused by hand at {step_label(spec, state.step)}, canary at "
        f"{state.canary_weight}%",
    ), None


def resume(
    spec: AnalysisSpec,
    state: RolloutState,
    now: datetime,
) -> tuple[RolloutState, None]:
    """By hand: continue a paused rollout at the step it was on."""
    check_time(now)
    if state.phase != PAUSED:
        raise RolloutError(f"only a paused rollout can be resumed; this one is {state.phase}")
    paused_for = (now - state.paused_at).total_seconds() if state.paused_at else 0.0
    return replace(
        state,
        phase=PROGRESSING,
        paused_at=None,
        paused_seconds=state.paused_seconds + max(0.0, paused_for),
        message=f"resumed by hand at {step_label(spec, state.step)}, canary at "
        f"{state.canary_weight}%",
    ), None
