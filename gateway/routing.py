"""The routing table: which replicas serve which deployment.

The control plane writes it (``upsert``/``remove``/``set_replicas``, and
``set_routes`` for the ModelRoutes under ``/custom/``); the request path only
reads it. Choosing a replica is a pure function of the replicas'
outstanding-request counts and their outlier state (:mod:`gateway.outlier`).

A deployment scaled to zero keeps its entry with no replicas. A request that
finds it so asks the control plane for a replica (``on_demand``) and waits
for ``set_replicas`` (or ``set_unavailable``) to wake it: the cold start.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .admission import DEFAULT_ADMISSION, Admission, Gate
from .outlier import HEALTHY, OutlierState, ejected
from .traffic import TrafficRoute

MODEL_PATH = re.compile(r"/model/([a-z][a-z0-9-]{0,62})(?=/|$)")
"""``/model/<deployment id>`` and below; the id follows the seed's rule."""


def model_deployment_id(path: str) -> str | None:
    """The deployment a ``/model/<id>/...`` path (without query) names, else None."""
    m = MODEL_PATH.match(path)
    return m.group(1) if m is not None else None


@dataclass(slots=True, eq=False)
class Replica:
    host: str
    port: int
    outstanding: int = 0
    outlier: OutlierState = HEALTHY

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(slots=True, eq=False)
class Deployment:
    """``documents``: JSON bodies the gateway answers itself for ``GET <path>`` instead of
    forwarding (e.g. ``/api/model/info`` of an inference server that has no such route)."""

    id: str
    model_name: str
    model_version: str
    replicas: list[Replica] = field(default_factory=list)
    in_flight: int = 0
    role_name: str | None = None
    """``spec.roleName``: one more role that may invoke this deployment."""
    requests: int = 0
    """Requests received so far; the autoscaler reads the difference between samples."""
    peer_requests: int = 0
    """Requests received by the other gateway processes (``mlgate up --workers``), as they
    report them to the primary."""
    peer_in_flight: int = 0
    """Requests in flight in the other gateway processes, as last reported."""
    shed: int = 0
    """Requests refused (503) because every replica was at its admission bound: demand the
    in-flight count cannot show, for the autoscaler."""
    peer_shed: int = 0
    """The same in the other gateway processes, as they report it to the primary."""
    on_demand: Callable[[str], None] | None = None
    """Called with the deployment id when a request finds no replica."""
    cold_start_timeout: float = 0.0
    """Seconds a request waits for a first replica; 0 answers 503 at once."""
    unavailable_reason: str = ""
    """Why no replica will come (e.g. the model cannot load); waiting requests get it at once."""
    ready: bool = True
    """The control plane's view (state ``Ready``); a route sends new traffic only to ready
    targets while it has one."""
    documents: dict[str, bytes] = field(default_factory=dict)
    """JSON bodies the gateway answers itself for ``GET <path>`` instead of forwarding
    (e.g. ``/api/model/info`` of an inference server that has no such route)."""
    admission: Admission = DEFAULT_ADMISSION
    """Bounds on requests in flight and waiting, deadlines (:mod:`gateway.admission`)."""
    rate_limits: tuple[Any, ...] = ()
    """The deployment's own rate limits (``gateway.ratelimit.RateRule``), from its
    ``mlgate.io/rate-limit`` annotations; the configured rules apply besides."""
    gate: Gate = field(default_factory=Gate)
    """Requests waiting for a replica slot (:class:`gateway.admission.Gate`)."""
    _changed: asyncio.Event | None = None

    def notify(self) -> None:
        """Wake every request waiting for this deployment's replicas (or a slot on one)."""
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        self.gate.wake_all()

    async def wait_for_replicas(self, timeout: float) -> bool:
        """Ask for a replica and wait up to ``timeout``; True once one is there.

        Returns False on timeout or as soon as ``unavailable_reason`` is set.
        """
        deadline = time.monotonic() + timeout
        while not self.replicas:
            if self.unavailable_reason:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._changed is None:
                self._changed = asyncio.Event()
            changed = self._changed  # before on_demand: it may answer at once
            if self.on_demand is not None:
                self.on_demand(self.id)
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return bool(self.replicas)
        return True


    def usable(self, now: float) -> bool:
        """May a route send it new traffic: Ready, not given up on, and a replica that is
        not ejected (or none yet, when a request may wait for one to start)."""
        if not self.ready or self.unavailable_reason:
            return False
        if not self.replicas:
            return self.cold_start_timeout > 0
        return any(not ejected(r.outlier, now) for r in self.replicas)


_tiebreak = itertools.count()


def pick_replica(replicas: Sequence[Replica], exclude: Iterable[Replica] = (),
                 now: float | None = None, limit: int = 0) -> Replica | None:
    """Least outstanding requests among replicas not ejected (all of them if every one
    is: Envoy's panic mode); ties rotate so idle replicas share the load. With ``limit``,
    only replicas with fewer than ``limit`` outstanding requests (None: every one is full,
    or none is left; :func:`has_candidates` tells which)."""
    if len(replicas) == 1 and not exclude:  # the common case: nothing to choose
        only = replicas[0]
        return only if not limit or only.outstanding < limit else None
    excluded = set(map(id, exclude))
    candidates = [r for r in replicas if id(r) not in excluded]
    if not candidates:
        return None
    when = time.monotonic() if now is None else now
    healthy = [r for r in candidates if not ejected(r.outlier, when)]
    candidates = healthy or candidates
    if limit:
        candidates = [r for r in candidates if r.outstanding < limit]
        if not candidates:
            return None
    if len(candidates) == 1:
        return candidates[0]
    least = min(r.outstanding for r in candidates)
    tied = [r for r in candidates if r.outstanding == least]
    return tied[next(_tiebreak) % len(tied)]


def has_candidates(replicas: Sequence[Replica], exclude: Iterable[Replica] = ()) -> bool:
    """Some replica is not excluded (so a None from :func:`pick_replica` means all are full)."""
    excluded = set(map(id, exclude))
    return any(id(r) not in excluded for r in replicas)


class RouteTable:
    def __init__(self) -> None:
        self._deployments: dict[str, Deployment] = {}
        self._routes: dict[str, TrafficRoute] = {}

    def get(self, deployment_id: str) -> Deployment | None:
        return self._deployments.get(deployment_id)

    def deployments(self) -> list[Deployment]:
        return list(self._deployments.values())

    def upsert(self, deployment_id: str, model_name: str, model_version: str,
               role_name: str | None = None) -> Deployment:
        dep = self._deployments.get(deployment_id)
        if dep is None:
            dep = self._deployments[deployment_id] = Deployment(
                deployment_id, model_name, model_version, role_name=role_name)
        else:
            dep.model_name, dep.model_version = model_name, model_version
            if role_name is not None:
                dep.role_name = role_name
        return dep

    def set_documents(self, deployment_id: str, documents: dict[str, bytes]) -> None:
        self._deployments[deployment_id].documents = dict(documents)

    def set_replicas(self, deployment_id: str, addresses: Iterable[tuple[str, int]]) -> None:
        """Replace the replica list, keeping the counters of replicas that stay."""
        dep = self._deployments[deployment_id]
        known = {(r.host, r.port): r for r in dep.replicas}
        dep.replicas = [known.get(a) or Replica(*a) for a in addresses]
        if dep.replicas:
            dep.unavailable_reason = ""
        dep.notify()

    def set_unavailable(self, deployment_id: str, reason: str) -> None:
        """No replica will come until the control plane says otherwise; ``""`` clears it."""
        dep = self._deployments[deployment_id]
        dep.unavailable_reason = reason
        if reason:
            dep.notify()

    def remove(self, deployment_id: str) -> None:
        dep = self._deployments.pop(deployment_id, None)
        if dep is not None:
            dep.unavailable_reason = dep.unavailable_reason or "model deployment was deleted"
            dep.notify()

    # -- ModelRoutes (``/custom/...``) -------------------------------------------------------------

    def routes(self) -> list[TrafficRoute]:
        return list(self._routes.values())

    def set_routes(self, routes: Iterable[TrafficRoute]) -> bool:
        """Replace every route at once (requests in flight keep the route they matched);
        True if anything changed."""
        new = {r.url_prefix: r for r in routes}
        if new == self._routes:
            return False
        self._routes = new
        return True

    def match(self, path: str) -> TrafficRoute | None:
        """The route whose ``urlPrefix`` is the longest one that ``path`` is at or under
        (whole segments: ``/custom/wine`` serves ``/custom/wine/x``, not ``/custom/wine2``)."""
        routes = self._routes
        if not routes:
            return None
        prefix = path.partition("?")[0]
        while prefix:
            route = routes.get(prefix)
            if route is not None:
                return route
            prefix = prefix[:prefix.rfind("/")]
        return None
