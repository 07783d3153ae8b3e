"""How many replicas a deployment wants, from the gateway's in-flight requests — pure decisions.

Concurrency-based, like Knative's autoscaler, in three rules:

* **scale up promptly**: every sample, the recommendation is
  ``ceil(average in-flight over the last `window` seconds / target concurrency)``;
  the desired count follows any rise at once;
* **scale down after a stable window**: the desired count is the *largest*
  recommendation of the last ``scale_down_delay`` seconds, so it falls only once
  the load has been lower for that long;
* **scale to zero when idle** (``minReplicas: 0`` only): no request and nothing
  in flight for ``scale_to_zero_after`` seconds gives 0. A request to a deployment
  at zero calls :meth:`Autoscaler.demand`, which makes it want one replica again.

The answer is always clamped to ``[minReplicas, maxReplicas]``. Time is a
parameter (``now``, in seconds on any monotonic clock), so the rules are tested
without sleeping. Per-deployment overrides come from ``spec.annotations``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

ANNOTATION_PREFIX = "mlgate.io/"
TARGET_CONCURRENCY = "mlgate.io/target-concurrency"
WINDOW = "mlgate.io/window"
SCALE_DOWN_DELAY = "mlgate.io/scale-down-delay"
SCALE_TO_ZERO_AFTER = "mlgate.io/scale-to-zero-after"
COLD_START_TIMEOUT = "mlgate.io/cold-start-timeout"

_ANNOTATION_FIELDS = {
    TARGET_CONCURRENCY: "target_concurrency",
    WINDOW: "window",
    SCALE_DOWN_DELAY: "scale_down_delay",
    SCALE_TO_ZERO_AFTER: "scale_to_zero_after",
    COLD_START_TIMEOUT: "cold_start_timeout",
}


@dataclass(frozen=True)
class ScalingPolicy:
    """One deployment's autoscaling knobs; seconds unless named otherwise."""

    min_replicas: int = 0
    max_replicas: int = 1
    target_concurrency: float = 10.0
    window: float = 3.0
    scale_down_delay: float = 60.0
    scale_to_zero_after: float = 300.0
    cold_start_timeout: float = 120.0

    def __post_init__(self) -> None:
        if self.target_concurrency <= 0:
            raise ValueError("target concurrency must be > 0")
        for name in ("window", "scale_down_delay", "scale_to_zero_after", "cold_start_timeout"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    def clamp(self, replicas: int) -> int:
        return max(self.min_replicas, min(self.max_replicas, replicas))


def annotation_errors(annotations: Mapping[str, str],
                      others: frozenset[str] = frozenset()) -> list[str]:
    """Problems with the ``mlgate.io/*`` annotations: unknown names, values not numbers.
    ``others``: further known names, checked elsewhere."""
    errors = []
    for key, value in annotations.items():
        if not key.startswith(ANNOTATION_PREFIX) or key in others:
            continue
        if key not in _ANNOTATION_FIELDS:
            known = ", ".join(sorted({*_ANNOTATION_FIELDS, *others}))
            errors.append(f"unknown annotation {key!r}; known: {known}")
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            errors.append(f"annotation {key} must be a number, got {value!r}")
            continue
        if not math.isfinite(number) or number < 0 or (key == TARGET_CONCURRENCY and number == 0):
            errors.append(f"annotation {key} must be a positive number, got {value!r}")
    return errors


def policy_for(defaults: ScalingPolicy, min_replicas: int, max_replicas: int,
               annotations: Mapping[str, str]) -> ScalingPolicy:
    """``defaults`` (from configuration) with the deployment's bounds and annotation overrides."""
    overrides: dict[str, float] = {}
    for key, name in _ANNOTATION_FIELDS.items():
        if key in annotations:
            overrides[name] = float(annotations[key])
    return replace(defaults, min_replicas=min_replicas, max_replicas=max_replicas, **overrides)


@dataclass
class ScalerState:
    """What one deployment's autoscaler remembers between samples."""

    started: float
    last_active: float
    samples: deque[tuple[float, int]] = field(default_factory=deque)
    recommendations: deque[tuple[float, int]] = field(default_factory=deque)
    last_requests: int | None = None
    last_available: int = 0
    last_shed: int | None = None

    @classmethod
    def new(cls, now: float) -> ScalerState:
        """A fresh deployment (or a new spec): counts as active now, so it starts with a replica."""
        return cls(started=now, last_active=now)


def observe(state: ScalerState, now: float, in_flight: int, requests_total: int,
            policy: ScalingPolicy, available: int = 0, shed_total: int | None = None) -> None:
    """Record one sample: requests in flight now, the gateway's running request count and
    the replicas available. A deployment coming back from zero counts as active from the
    moment its first replica is available, so a cold start is never undone at once.

    ``shed_total``: the gateway's running count of requests refused because every replica
    was at its admission bound. Those never show as in flight (the bound caps that), so a
    sample with new ones asks for one replica more than are available: admission control
    sheds the excess at once, the autoscaler adds capacity for it.
    """
    new_requests = 0 if state.last_requests is None else requests_total - state.last_requests
    state.last_requests = requests_total
    saturated = False
    if shed_total is not None:
        saturated = state.last_shed is not None and shed_total > state.last_shed
        state.last_shed = shed_total
    if in_flight > 0 or new_requests > 0 or (available > 0 and state.last_available == 0):
        state.last_active = now
    state.last_available = available
    state.samples.append((now, in_flight))
    while state.samples and state.samples[0][0] < now - policy.window:
        state.samples.popleft()
    average = sum(c for _, c in state.samples) / len(state.samples)
    recommended = math.ceil(average / policy.target_concurrency)
    if saturated:
        recommended = max(recommended, available + 1)
    state.recommendations.append((now, recommended))
    while state.recommendations and state.recommendations[0][0] < now - policy.scale_down_delay:
        state.recommendations.popleft()


def demand(state: ScalerState, now: float) -> None:
    """A request is waiting for a replica: the deployment is active from now on."""
    state.last_active = now


def decide(state: ScalerState, policy: ScalingPolicy, now: float, may_scale_to_zero: bool) -> int:
    """Desired replicas now. ``may_scale_to_zero`` is False until the spec has been Ready once."""
    recommended = max((n for _, n in state.recommendations), default=0)
    idle = now - state.last_active >= policy.scale_to_zero_after
    if policy.min_replicas == 0 and idle and may_scale_to_zero:
        return 0
    return policy.clamp(max(1, recommended))


class Autoscaler:
    """Per-deployment scaler states; the reconciler feeds samples and asks for decisions."""

    def __init__(self, defaults: ScalingPolicy) -> None:
        self.defaults = defaults
        self._states: dict[tuple[str, int], ScalerState] = {}

    def state(self, dep_id: str, generation: int, now: float) -> ScalerState:
        key = (dep_id, generation)
        found = self._states.get(key)
        if found is None:
            for old in [k for k in self._states if k[0] == dep_id]:
                del self._states[old]
            found = self._states[key] = ScalerState.new(now)
        return found

    def forget(self, dep_id: str) -> None:
        for key in [k for k in self._states if k[0] == dep_id]:
            del self._states[key]

    def demand(self, dep_id: str, now: float) -> None:
        for key, state in self._states.items():
            if key[0] == dep_id:
                demand(state, now)
