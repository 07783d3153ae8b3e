"""The control loop: make the runtime and the gateway's table match the stored deployments.

:func:`reconcile` is pure — one stored deployment, what the runtime observes of
it and the autoscaler's replica count in, a list of actions out — and idempotent:
actions say what should *be* (run N replicas of generation G; publish these
endpoints; this status), so applying them twice changes nothing. The
:class:`Reconciler` shell runs it for every deployment whenever the store or the
runtime reports a change, and at least every autoscaler interval.

States (ODAHU's): ``Processing`` while replicas start; ``Ready`` once
``availableReplicas >= max(1, minReplicas)`` — and it stays Ready while the
autoscaler scales between ``minReplicas`` and ``maxReplicas``, zero included;
``Failed`` with a reason when the runtime gives up on the spec; ``Deleting``
until every replica stopped, then the deployment and its default route go.

ModelRoutes are published to the table as soon as the store commits a change
(a store listener, so the API answers after the gateway has the new weights),
and again on every pass. Each pass ends with the canary rollouts' pass
(:class:`~deploy.control.rollouts.RolloutDriver`), so the reconciler's clock drives them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from deploy.control.autoscaler import Autoscaler, ScalingPolicy, decide, observe, policy_for
from deploy.control.deployments import (
    STATE_DELETING,
    STATE_FAILED,
    STATE_PROCESSING,
    STATE_READY,
    ModelDeployment,
    ModelDeploymentStatus,
)
from deploy.control.protection import admission_for, rate_limits_for
from deploy.control.resource import utcnow
from deploy.control.rollouts import RolloutDriver
from deploy.control.routes import traffic_route
from deploy.control.runtime import Observed, Runtime
from deploy.control.store import Store
from gateway import DEFAULT_ADMISSION, Admission, RateRule, RouteTable

log = logging.getLogger("mlgate.reconciler")


@dataclass(frozen=True)
class Apply:
    deployment: ModelDeployment
    replicas: int


@dataclass(frozen=True)
class Delete:
    deployment_id: str


@dataclass(frozen=True)
class Remove:
    """Everything stopped: forget the deployment (and its default route)."""

    deployment_id: str


@dataclass(frozen=True)
class WriteStatus:
    deployment_id: str
    generation: int
    status: ModelDeploymentStatus


@dataclass(frozen=True)
class Publish:
    """The gateway's table entry: where traffic goes, or why none can."""

    deployment_id: str
    model_name: str
    model_version: str
    endpoints: tuple[tuple[str, int], ...]
    unavailable: str
    cold_start_timeout: float
    role_name: str | None = None
    ready: bool = True
    """State Ready: a route may send it new traffic."""
    documents: tuple[tuple[str, bytes], ...] = ()
    admission: Admission = DEFAULT_ADMISSION
    """Its bounds: the configured ones with its ``mlgate.io/*`` overrides."""
    rate_limits: tuple[RateRule, ...] = ()
    """Its own rate limit (``mlgate.io/rate-limit``)."""


@dataclass(frozen=True)
class Unpublish:
    deployment_id: str


@dataclass(frozen=True)
class MarkVerified:
    """This generation has been Ready: from now on the autoscaler may take it to zero."""

    deployment_id: str
    generation: int


Action = Apply | Delete | Remove | WriteStatus | Publish | Unpublish | MarkVerified


def reconcile(dep: ModelDeployment, observed: Observed | None, replicas: int, verified: bool,
              policy: ScalingPolicy, now: str,
              admission: Admission = DEFAULT_ADMISSION) -> list[Action]:
    """What to do for one deployment. ``verified``: this generation was Ready before;
    ``admission``: the configured bounds its annotations may override."""
    if dep.status.state == STATE_DELETING:
        if observed is None:
            return [Unpublish(dep.id), Remove(dep.id)]
        return [Unpublish(dep.id), Delete(dep.id)]
    actions: list[Action] = [Apply(dep, replicas)]
    verified = verified or (observed is not None and observed.generation == dep.generation
                            and observed.verified)
    status = desired_status(dep, observed, verified)
    if _differs(status, dep.status):
        status.last_updated_time = now
        actions.append(WriteStatus(dep.id, dep.generation, status))
    if status.state == STATE_READY and not verified:
        actions.append(MarkVerified(dep.id, dep.generation))
    actions.append(Publish(
        dep.id, status.model_name or dep.id, status.model_version or "unknown",
        observed.endpoints if observed is not None else (),
        status.reason if status.state == STATE_FAILED else "", policy.cold_start_timeout,
        dep.spec.role_name, ready=status.state == STATE_READY,
        documents=observed.documents if observed is not None else (),
        admission=admission_for(admission, dep.spec.annotations),
        rate_limits=rate_limits_for(dep.id, dep.spec.annotations)))
    return actions


def desired_status(dep: ModelDeployment, observed: Observed | None,
                   verified: bool) -> ModelDeploymentStatus:
    previous = dep.status
    if observed is None or observed.generation != dep.generation:
        return ModelDeploymentStatus(STATE_PROCESSING, 0, 0, previous.model_name,
                                     previous.model_version,
                                     reason=observed.problem if observed is not None else "")
    status = ModelDeploymentStatus(
        STATE_PROCESSING, observed.replicas, observed.available,
        observed.model_name or previous.model_name,
        observed.model_version or previous.model_version)
    if observed.failure:
        status.state, status.reason = STATE_FAILED, observed.failure
    elif observed.available >= max(1, dep.spec.min_replicas) or (
            verified and observed.available >= dep.spec.min_replicas):
        status.state = STATE_READY
    else:
        status.reason = observed.problem
    return status


def _differs(a: ModelDeploymentStatus, b: ModelDeploymentStatus) -> bool:
    left, right = a.to_dict(), b.to_dict()
    left.pop("lastUpdatedTime", None)
    right.pop("lastUpdatedTime", None)
    return left != right


class Reconciler:
    """The thin shell around :func:`reconcile`: reads the store, the runtime and the table."""

    def __init__(self, store: Store, runtime: Runtime, table: RouteTable,
                 defaults: ScalingPolicy, interval: float,
                 clock: Callable[[], float] = time.monotonic,
                 rollouts: RolloutDriver | None = None,
                 admission: Admission | None = None) -> None:
        self.store = store
        self.rollouts = rollouts
        self.admission = admission or DEFAULT_ADMISSION
        self.runtime = runtime
        self.table = table
        self.defaults = defaults
        self.interval = interval
        self.clock = clock
        self.autoscaler = Autoscaler(defaults)
        self._verified: dict[str, int] = {}
        self._wake = asyncio.Event()
        store.subscribe(self.wake)
        store.subscribe(self.publish_routes)

    def wake(self) -> None:
        self._wake.set()

    def demand(self, dep_id: str) -> None:
        """The gateway holds a request for ``dep_id`` and has no replica: want one now."""
        self.autoscaler.demand(dep_id, self.clock())
        self.wake()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                self.reconcile_all()
            except sqlite3.Error:
                log.exception("cannot read or write the state store; retrying")
            except Exception:  # a bug must not stop the control loop: log it, go on
                log.exception("reconcile pass failed; retrying")
            if self.rollouts is not None:
                try:
                    self.rollouts.tick()
                except sqlite3.Error:
                    log.exception("cannot read or write the rollouts in the state store; "
                                  "retrying")
                except Exception:
                    log.exception("rollout pass failed; retrying")
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow
                async with asyncio.timeout(self.interval):  # the cancel that stops the loop
                    await self._wake.wait()

    def publish_routes(self) -> None:
        """The stored ModelRoutes (not the default ones: ``/model/<id>`` is served by id)
        into the table, replacing the previous set at once."""
        try:
            routes = [traffic_route(r) for r in self.store.list_routes() if not r.default]
        except sqlite3.Error:
            log.exception("cannot read the routes from the state store; keeping the last ones")
            return
        if self.table.set_routes(routes):
            log.info("routes published: %s", ", ".join(
                f"{r.id} ({r.url_prefix}: "
                + " ".join(f"{t.deployment_id}={t.weight}" for t in r.targets)
                + (f", mirror {r.mirror}" if r.mirror else "") + ")"
                for r in routes) or "none")

    def reconcile_all(self) -> None:
        self.publish_routes()
        now = self.clock()
        stamp = utcnow()
        deployments = self.store.list_deployments()
        for dep in deployments:
            policy = self.policy(dep)
            verified = self._verified.get(dep.id) == dep.generation
            observed = self.runtime.observe(dep.id)
            replicas = dep.spec.min_replicas  # only informative where the platform scales
            if not self.runtime.autoscales and dep.status.state != STATE_DELETING:
                available = observed.available if observed is not None else 0
                replicas = self._scale(dep, policy, now, verified, available)
            for action in reconcile(dep, observed, replicas, verified, policy, stamp,
                                    self.admission):
                self._apply(action)
        stored = {d.id for d in deployments}
        for orphan in self.runtime.known() - stored:
            self.runtime.delete(orphan)
        for entry in self.table.deployments():
            if entry.id not in stored:
                self.table.remove(entry.id)

    def policy(self, dep: ModelDeployment) -> ScalingPolicy:
        return policy_for(self.defaults, dep.spec.min_replicas, dep.spec.max_replicas,
                          dep.spec.annotations)

    def _scale(self, dep: ModelDeployment, policy: ScalingPolicy, now: float,
               verified: bool, available: int) -> int:
        state = self.autoscaler.state(dep.id, dep.generation, now)
        entry = self.table.get(dep.id)
        in_flight = entry.in_flight + entry.peer_in_flight if entry else 0
        requests = entry.requests + entry.peer_requests if entry else 0
        shed = entry.shed + entry.peer_shed if entry else None
        observe(state, now, in_flight, requests, policy, available, shed)
        return decide(state, policy, now, verified)

    def _apply(self, action: Action) -> None:
        if isinstance(action, Apply):
            self.runtime.apply(action.deployment, action.replicas)
        elif isinstance(action, Delete):
            self.runtime.delete(action.deployment_id)
        elif isinstance(action, Remove):
            log.info("deployment %s deleted", action.deployment_id)
            self.autoscaler.forget(action.deployment_id)
            self._verified.pop(action.deployment_id, None)
            self.store.remove_deployment(action.deployment_id)
        elif isinstance(action, MarkVerified):
            self._verified[action.deployment_id] = action.generation
        elif isinstance(action, WriteStatus):
            if self.store.set_status(action.deployment_id, action.generation, action.status):
                log.info("deployment %s: %s (%d/%d replicas)%s", action.deployment_id,
                         action.status.state, action.status.available_replicas,
                         action.status.replicas,
                         f": {action.status.reason}" if action.status.reason else "")
        elif isinstance(action, Publish):
            self._publish(action)
        else:
            self.table.remove(action.deployment_id)

    def _publish(self, action: Publish) -> None:
        dep_id = action.deployment_id
        entry = self.table.get(dep_id)
        if entry is None:
            entry = self.table.upsert(dep_id, action.model_name, action.model_version,
                                      role_name=action.role_name)
            entry.on_demand = self.demand
        elif (entry.model_name, entry.model_version, entry.role_name) != (
                action.model_name, action.model_version, action.role_name):
            self.table.upsert(dep_id, action.model_name, action.model_version,
                              role_name=action.role_name)
        entry.cold_start_timeout = action.cold_start_timeout
        entry.ready = action.ready
        entry.admission = action.admission
        entry.rate_limits = action.rate_limits
        if tuple(sorted(entry.documents.items())) != action.documents:
            self.table.set_documents(dep_id, dict(action.documents))
        if tuple(r.address for r in entry.replicas) != tuple(
                f"{h}:{p}" for h, p in action.endpoints):
            self.table.set_replicas(dep_id, action.endpoints)
        if entry.unavailable_reason != action.unavailable:
            self.table.set_unavailable(dep_id, action.unavailable)
