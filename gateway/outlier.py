"""Outlier ejection: a replica that keeps failing gets no traffic for a while, then a probe.

A pure state machine per replica (Envoy's ``consecutive_gateway_failure``):

- ``consecutive_failures`` failures in a row (could not connect, broken or timed-out
  exchange, or a 502/503/504 answer) eject the replica for ``base_ejection``
  seconds, doubling with each ejection in a row up to ``max_ejection``;
- when that time is over the replica is back on probation: the next answer decides.
  A success ends probation (and a second success forgets the past ejections), a
  failure ejects it again at once, for longer;
- a model's own errors (400, 500) are answers, not failures.

No replica is ever unusable for good: when every replica of a deployment is
ejected, :func:`gateway.routing.pick_replica` uses them anyway (Envoy's panic mode),
and a route moves its traffic to another target while one is usable.

The small shell (:func:`record`) applies the transitions to a replica and logs ejections.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Protocol

log = logging.getLogger("mlgate.gateway.outlier")

FAILURE_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class OutlierPolicy:
    consecutive_failures: int = 5
    base_ejection: float = 10.0
    max_ejection: float = 300.0

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1:
            raise ValueError("outlier consecutive_failures must be >= 1")
        if not 0 < self.base_ejection <= self.max_ejection:
            raise ValueError("outlier ejection times must be 0 < base_ejection <= max_ejection")


@dataclass(frozen=True, slots=True)
class OutlierState:
    failures: int = 0
    """Failures in a row since the last success or ejection."""
    ejections: int = 0
    """Ejections in a row; sets the length of the next one."""
    ejected_until: float = 0.0
    probation: bool = False
    """Ejected before and not yet proven healthy: one failure ejects again."""


HEALTHY = OutlierState()


def ejected(state: OutlierState, now: float) -> bool:
    return now < state.ejected_until


def after_success(state: OutlierState) -> OutlierState:
    if state == HEALTHY:
        return state
    if state.probation:
        return replace(state, failures=0, probation=False)
    return HEALTHY


def after_failure(state: OutlierState, now: float, policy: OutlierPolicy) -> OutlierState:
    failures = state.failures + 1
    if not state.probation and failures < policy.consecutive_failures:
        return replace(state, failures=failures)
    ejections = state.ejections + 1
    duration = min(policy.base_ejection * 2 ** (ejections - 1), policy.max_ejection)
    return OutlierState(failures=0, ejections=ejections, ejected_until=now + duration,
                        probation=True)


def is_failure_status(status: int) -> bool:
    return status in FAILURE_STATUSES


class Tracked(Protocol):
    outlier: OutlierState

    @property
    def address(self) -> str: ...


def record(replica: Tracked, ok: bool, now: float, policy: OutlierPolicy) -> None:
    """Apply one outcome to ``replica``; log when it is ejected."""
    state = replica.outlier
    if ok:
        replica.outlier = after_success(state)
        return
    new = after_failure(state, now, policy)
    replica.outlier = new
    if new.ejections > state.ejections:
        log.warning("replica %s ejected for %.0fs after %s", replica.address,
                    new.ejected_until - now,
                    "a failed probe" if state.probation else
                    f"{policy.consecutive_failures} failures in a row")
