"""The routing table: which replicas serve which deployment.

The control plane writes it (``upsert``/``remove``/``set_replicas``); the
request path only reads it. Choosing a replica is a pure function of the
replicas' outstanding-request counts.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field


@dataclass(slots=True, eq=False)
class Replica:
    host: str
    port: int
    outstanding: int = 0
    consecutive_failures: int = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(slots=True, eq=False)
class Deployment:
    id: str
    model_name: str
    model_version: str
    replicas: list[Replica] = field(default_factory=list)
    in_flight: int = 0
    # > 0: a request finding no replica waits this long for one (scale from zero).
    activation_timeout: float = 0.0
    has_replicas: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    async def wait_for_replica(self) -> bool:
        """Wait up to ``activation_timeout`` for a first replica; False when none came."""
        try:
            await asyncio.wait_for(self.has_replicas.wait(), self.activation_timeout)
        except TimeoutError:
            return False
        return bool(self.replicas)


_tiebreak = itertools.count()


def pick_replica(replicas: Sequence[Replica], exclude: Iterable[Replica] = ()) -> Replica | None:
    """Least outstanding requests; ties rotate so idle replicas share the load."""
    excluded = set(map(id, exclude))
    candidates = [r for r in replicas if id(r) not in excluded]
    if not candidates:
        return None
    if len(candidates) == 1:
        return candidates[0]
    least = min(r.outstanding for r in candidates)
    tied = [r for r in candidates if r.outstanding == least]
    return tied[next(_tiebreak) % len(tied)]


class RouteTable:
    def __init__(self) -> None:
        self._deployments: dict[str, Deployment] = {}

    def get(self, deployment_id: str) -> Deployment | None:
        return self._deployments.get(deployment_id)

    def deployments(self) -> list[Deployment]:
        return list(self._deployments.values())

    def upsert(self, deployment_id: str, model_name: str, model_version: str) -> Deployment:
        dep = self._deployments.get(deployment_id)
        if dep is None:
            dep = self._deployments[deployment_id] = Deployment(
                deployment_id, model_name, model_version)
        else:
            dep.model_name, dep.model_version = model_name, model_version
        return dep

    def set_replicas(self, deployment_id: str, addresses: Iterable[tuple[str, int]]) -> None:
        """Replace the replica list, keeping the counters of replicas that stay."""
        dep = self._deployments[deployment_id]
        known = {(r.host, r.port): r for r in dep.replicas}
        dep.replicas = [known.get(a) or Replica(*a) for a in addresses]
        if dep.replicas:
            dep.has_replicas.set()
        else:
            dep.has_replicas.clear()

    def remove(self, deployment_id: str) -> None:
        self._deployments.pop(deployment_id, None)
