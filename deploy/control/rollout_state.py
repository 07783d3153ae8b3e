"""The stored state of a canary rollout, its JSON form, and what both state machine modules
(``rollout.py``, ``rollout_manual.py``) share (pure)."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .analysis import AnalysisSpec

PROGRESSING = "Progressing"
PAUSED = "Paused"
INCONCLUSIVE_PHASE = "Inconclusive"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
PHASES = (PROGRESSING, PAUSED, INCONCLUSIVE_PHASE, SUCCEEDED, FAILED)
ACTIVE = (PROGRESSING, INCONCLUSIVE_PHASE)
FINISHED = (SUCCEEDED, FAILED)

Weights = dict[str, int]


class RolloutError(ValueError):
    """A manual action that makes no sense in the rollout's phase (answer 409 or 400)."""


@dataclass(frozen=True)
class RolloutState:
    """Where a rollout is. ``step`` indexes ``stepWeights`` (its length once promoted);
    ``paused_seconds`` is the time paused during the current step (it extends the deadline)."""

    phase: str
    step: int
    canary_weight: int
    failed_checks: int
    started_at: datetime
    step_started_at: datetime
    spec_hash: str
    last_judged_at: datetime | None = None
    message: str = ""
    last_judgement: dict[str, Any] | None = None
    paused_at: datetime | None = None
    paused_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the store and for ``status.rollout``."""
        return {
            "phase": self.phase,
            "step": self.step,
            "canaryWeight": self.canary_weight,
            "failedChecks": self.failed_checks,
            "startedAt": _iso(self.started_at),
            "stepStartedAt": _iso(self.step_started_at),
            "lastJudgedAt": _iso(self.last_judged_at),
            "message": self.message,
            "lastJudgement": copy.deepcopy(self.last_judgement),
            "specHash": self.spec_hash,
            "pausedAt": _iso(self.paused_at),
            "pausedSeconds": self.paused_seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RolloutState:
        """Rebuild a stored state; ``ValueError`` names a missing or broken key."""
        try:
            state = cls(
                phase=data["phase"],
                step=int(data["step"]),
                canary_weight=int(data["canaryWeight"]),
                failed_checks=int(data["failedChecks"]),
                started_at=_time(data["startedAt"]),
                step_started_at=_time(data["stepStartedAt"]),
                spec_hash=str(data["specHash"]),
                last_judged_at=_time(data.get("lastJudgedAt")),
                message=str(data.get("message") or ""),
                last_judgement=copy.deepcopy(data.get("lastJudgement")),
                paused_at=_time(data.get("pausedAt")),
                paused_seconds=float(data.get("pausedSeconds") or 0.0),
            )
        except KeyError as exc:
            raise ValueError(f"stored rollout state lacks {exc.args[0]}") from None
        if state.phase not in PHASES:
            raise ValueError(f"stored rollout state has unknown phase {state.phase!r}")
        return state


def spec_hash(spec: AnalysisSpec) -> str:
    """A digest of the analysis spec and the stable target it was made for: a rollout is
    (re)started when it changes."""
    canonical = json.dumps({"analysis": spec.to_dict(), "stable": spec.stable}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def check_time(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime (UTC wall clock)")


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def _time(text: Any) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(str(text))
    check_time(moment)
    return moment


def route_weights(spec: AnalysisSpec, state: RolloutState) -> Weights:
    """The route weights the state stands for: ``{stable: 100 - w, canary: w}``."""
    return {spec.stable: 100 - state.canary_weight, spec.canary: state.canary_weight}


def rolled_back(
    spec: AnalysisSpec,
    state: RolloutState,
    message: str,
) -> tuple[RolloutState, Weights]:
    """Phase Failed, stable back to 100."""
    failed = replace(state, phase=FAILED, canary_weight=0, message=message)
    return failed, route_weights(spec, failed)


def step_label(spec: AnalysisSpec, index: int) -> str:
    """``step 2 of 3`` for index 1 (a promoted rollout stays on its last step's label)."""
    return f"step {min(index + 1, len(spec.step_weights))} of {len(spec.step_weights)}"
