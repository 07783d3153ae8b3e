"""Which replica processes to start, stop or forget — a pure function of desired and observed.

The local runtime keeps, per deployment, a set of numbered slots. Each slot is
a replica of one spec generation in one phase::

    starting -> ready -> (exited | stopping)      exited -> starting (restart, after backoff)

:func:`plan` compares that with the desired generation and count and answers
the actions; running it again on the same inputs answers the same actions, and
running it after they were applied answers none (idempotent). An update starts
the new generation's replicas first and stops the old ones only once enough
new ones are ready, so traffic never goes to zero replicas because of an update.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

STARTING = "starting"
READY = "ready"
STOPPING = "stopping"
EXITED = "exited"


@dataclass(frozen=True)
class ReplicaView:
    index: int
    generation: int
    phase: str
    retry_at: float = 0.0
    """For an exited replica: when it may be started again (``inf``: never, for this spec)."""


@dataclass(frozen=True)
class Target:
    generation: int
    replicas: int
    failed: bool = False
    """The runtime gave up on this generation: run nothing of it."""


@dataclass(frozen=True)
class Start:
    index: int


@dataclass(frozen=True)
class Stop:
    index: int


@dataclass(frozen=True)
class Forget:
    index: int


Action = Start | Stop | Forget


def plan(target: Target | None, replicas: Sequence[ReplicaView], now: float) -> list[Action]:
    """Actions that move ``replicas`` towards ``target`` (None: the deployment is deleted)."""
    if target is None or target.failed:
        return _stop_all(replicas)
    current = [r for r in replicas if r.generation == target.generation]
    old = [r for r in replicas if r.generation != target.generation]
    alive = [r for r in current if r.phase in (STARTING, READY)]
    exited = sorted((r for r in current if r.phase == EXITED), key=lambda r: r.index)
    want = max(0, target.replicas)
    actions: list[Action] = []

    if len(alive) > want:  # stop starting replicas before ready ones, newest first
        victims = sorted(alive, key=lambda r: (r.phase == READY, -r.index))
        actions += [Stop(r.index) for r in victims[:len(alive) - want]]

    missing = want - len(alive)
    for r in exited:
        if missing > 0 and math.isfinite(r.retry_at):
            missing -= 1  # this slot is restarted, now or once its backoff is over
            if now >= r.retry_at:
                actions.append(Start(r.index))
        else:
            actions.append(Forget(r.index))
    used = {r.index for r in replicas}
    index = 0
    while missing > 0:
        if index not in used:
            actions.append(Start(index))
            missing -= 1
        index += 1

    ready_now = sum(1 for r in current if r.phase == READY)
    for r in old:
        if r.phase == EXITED:
            actions.append(Forget(r.index))
        elif r.phase != STOPPING and (want == 0 or ready_now >= want or r.phase == STARTING):
            actions.append(Stop(r.index))
    return actions


def _stop_all(replicas: Sequence[ReplicaView]) -> list[Action]:
    actions: list[Action] = []
    for r in replicas:
        if r.phase in (STARTING, READY):
            actions.append(Stop(r.index))
        elif r.phase == EXITED:
            actions.append(Forget(r.index))
    return actions


def next_retry(replicas: Sequence[ReplicaView], now: float) -> float | None:
    """The earliest future time an exited replica may be restarted, if any."""
    times = [r.retry_at for r in replicas
             if r.phase == EXITED and math.isfinite(r.retry_at) and r.retry_at > now]
    return min(times, default=None)
