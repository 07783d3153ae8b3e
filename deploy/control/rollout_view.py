"""What a canary rollout shows: ``status.rollout`` of a ModelRoute, the rollout's document
with its history, and the history itself (pure: the time is an argument).

``status.rollout`` (``rollout_status``)::

    phase          Progressing | Paused | Inconclusive | Succeeded | Failed
    step           the step the rollout is on, from 1 (the last one once promoted)
    steps          how many steps (len(stepWeights))
    canary, stable the two targets
    canaryWeight   the canary's weight now; weights: both targets' weights
    failedChecks   failed judgements so far (threshold: how many roll it back)
    message        what happened last and why, in words
    startedAt, stepStartedAt, lastJudgedAt, deadline (when the step fails unless it passes;
                   only while the rollout judges)
    lastJudgement  {at, verdict, metrics: [{name, verdict, canary, stable, bound, pValue,
                   effect, samples: {canary, stable}, reason}]}

The history (``record``) has one entry per change of phase, step, weight or failed checks,
so the status page can draw the weight over time; it is bounded to the last
``HISTORY_LIMIT`` entries.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .analysis import AnalysisSpec
from .rollout import deadline
from .rollout_state import ACTIVE, RolloutState, Weights, route_weights

HISTORY_LIMIT = 500
CHANGES = ("phase", "step", "canaryWeight", "failedChecks")


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def shown_step(spec: AnalysisSpec, state: RolloutState) -> int:
    """The step as people count it: from 1, the last one once promoted."""
    return min(state.step + 1, len(spec.step_weights))


def rollout_status(spec: AnalysisSpec, state: RolloutState) -> dict[str, Any]:
    """``status.rollout`` (the fields are listed in the module docstring)."""
    judged = state.last_judgement
    return {
        "phase": state.phase,
        "step": shown_step(spec, state),
        "steps": len(spec.step_weights),
        "canary": spec.canary,
        "stable": spec.stable,
        "canaryWeight": state.canary_weight,
        "weights": route_weights(spec, state),
        "failedChecks": state.failed_checks,
        "threshold": spec.threshold,
        "message": state.message,
        "startedAt": iso(state.started_at),
        "stepStartedAt": iso(state.step_started_at),
        "lastJudgedAt": iso(state.last_judged_at),
        "deadline": iso(deadline(spec, state)) if state.phase in ACTIVE else None,
        "lastJudgement": ({"at": iso(state.last_judged_at), **copy.deepcopy(judged)}
                          if judged is not None else None),
    }


def rollout_document(route_id: str, spec: AnalysisSpec, state: RolloutState,
                     history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``GET /api/v1/model/route/{id}/rollout``: the status, the analysis and the history."""
    return {"routeId": route_id, **rollout_status(spec, state),
            "interval": spec.to_dict()["interval"], "stepWeights": list(spec.step_weights),
            "history": [dict(entry) for entry in history]}


def history_entry(spec: AnalysisSpec, state: RolloutState, now: datetime) -> dict[str, Any]:
    return {"at": iso(now), "phase": state.phase, "step": shown_step(spec, state),
            "canaryWeight": state.canary_weight, "failedChecks": state.failed_checks,
            "message": state.message}


def record(history: Sequence[Mapping[str, Any]], spec: AnalysisSpec, state: RolloutState,
           now: datetime, restarted: bool = False) -> list[dict[str, Any]]:
    """The history with ``state`` appended when it changed something that shows (a restarted
    rollout begins a new history)."""
    entry = history_entry(spec, state, now)
    if restarted:
        return [entry]
    past = [dict(e) for e in history]
    if past and all(past[-1].get(k) == entry[k] for k in CHANGES):
        return past
    return [*past, entry][-HISTORY_LIMIT:]


def weights_differ(targets: Sequence[tuple[str, int]], weights: Weights) -> bool:
    """Whether a route's ``(mdName, weight)`` pairs say something else than ``weights``."""
    return any(weights.get(name, weight) != weight for name, weight in targets)
