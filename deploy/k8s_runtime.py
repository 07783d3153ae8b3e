"""The Kubernetes runtime: ModelDeployments become Deployments, Services and autoscalers.

A thin async shell around pure parts: ``k8s_manifests.render`` (what should exist),
``k8s_plan.plan`` (what to apply or delete), ``k8s_status.derive_status`` (what the
cluster says) and ``k8s_client`` (the only module talking to the API).

- ``apply(dep)`` lists the deployment's objects, applies what changed (server-side
  apply), deletes what is no longer wanted, and publishes the deployment in the
  routing table (one replica: its Service) — idempotent, so calling it again, or after
  a restart, writes nothing when nothing changed.
- ``delete(dep_id)`` stops routing and deletes the objects (the Deployment's pods go
  with it through the garbage collector).
- Status comes from watches on the managed Deployments, their pods and the namespace's
  Warning events; every change of a deployment's state is reported through
  ``on_status(dep_id, ModelDeploymentStatus)`` and moves the routing: a deployment is
  routed to its Service while it has an available replica; with ``minReplicas: 0`` the
  gateway holds a request while it has none (KEDA scales it up on the in-flight metric).

Errors: ``KubeUnavailable`` means retry later, ``KubeRejected`` and ``ValueError`` (an
image the cluster cannot run) mean the deployment cannot be created as specified.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import aiohttp

from gateway import RouteTable

from .config import KubernetesSettings
from .k8s_client import EVENT, POD, KubeClient, KubeRejected, KubeUnavailable, WatchEvent
from .k8s_identity import UNKNOWN_VERSION, probe_identity
from .k8s_manifests import (
    DEPLOYMENT,
    LABEL_DEPLOYMENT,
    MANAGED_BY,
    MANAGED_KINDS,
    SCALED_OBJECT,
    Manifest,
    kind_of,
    render,
    service_address,
)
from .k8s_plan import Plan, plan
from .k8s_status import Observed, derive_status
from .models import STATE_DELETING, ModelDeployment, ModelDeploymentStatus, utcnow

log = logging.getLogger("mlgate.kubernetes")

# Called in the event loop on every change of a deployment's status: keep it quick.
StatusCallback = Callable[[str, ModelDeploymentStatus], None]


@dataclass
class _Route:
    """What the routing table should say for one deployment, and what it says."""

    dep: ModelDeployment
    wanted: list[tuple[str, int]]
    published: list[tuple[str, int]] | None = None
    identity: tuple[str, str] | None = None
    task: asyncio.Task | None = None


def _name(obj: Manifest) -> str:
    return obj["metadata"]["name"]


class KubernetesRuntime:
    def __init__(self, settings: KubernetesSettings, table: RouteTable | None = None,
                 on_status: StatusCallback | None = None,
                 client: KubeClient | None = None) -> None:
        self.settings = settings
        self.table = table
        self.on_status = on_status
        self.client = client or KubeClient(settings)
        self._deployments: dict[str, Manifest] = {}
        self._pods: dict[str, Manifest] = {}
        self._warnings: dict[str, dict[str, Manifest]] = {}  # pod name -> event name -> event
        self._status: dict[str, ModelDeploymentStatus] = {}
        self._routes: dict[str, _Route] = {}
        self._tasks: list[asyncio.Task] = []
        self._session: aiohttp.ClientSession | None = None

    # -- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, then watch; returns once the current state of the cluster is known."""
        await self.client.start()
        try:
            await self.client.list(DEPLOYMENT, MANAGED_BY)  # fail fast: config, RBAC, reachability
        except BaseException:
            await self.client.close()
            raise
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        synced = [asyncio.Event() for _ in range(3)]
        watches = [(DEPLOYMENT, MANAGED_BY, None, self._on_deployment),
                   (POD, MANAGED_BY, None, self._on_pod),
                   (EVENT, None, {"type": "Warning"}, self._on_event)]
        for (kind, labels, fields, handler), done in zip(watches, synced, strict=True):
            self._tasks.append(asyncio.create_task(
                self._consume(kind, labels, fields, handler, done), name=f"watch-{kind[1]}"))
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in synced)),
                                   self.settings.api_timeout * 3)
        except TimeoutError:
            await self.close()
            missing = [w[0][1] for w, e in zip(watches, synced, strict=True) if not e.is_set()]
            raise KubeUnavailable(f"could not list {', '.join(missing)} in namespace "
                                  f"{self.settings.namespace} (see the warnings above)") from None

    async def close(self) -> None:
        """Stop watching; objects in the cluster stay (the cluster outlives the gateway)."""
        tasks = self._tasks + [r.task for r in self._routes.values() if r.task]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
        await self.client.close()

    # -- reconcile ----------------------------------------------------------------------

    async def observe(self, dep_id: str) -> list[Manifest]:
        """Every object of ``dep_id`` the controller manages, read from the API."""
        found: list[Manifest] = []
        for kind in MANAGED_KINDS:
            try:
                items, _ = await self.client.list(kind, {LABEL_DEPLOYMENT: dep_id, **MANAGED_BY})
            except KubeRejected as exc:
                if kind == SCALED_OBJECT and exc.code == 404:
                    continue  # KEDA not installed: there is nothing of that kind to find
                raise
            found.extend(items)
        return found

    async def apply(self, dep: ModelDeployment) -> Plan:
        """Bring the cluster to ``dep``; the plan that was carried out."""
        render(dep, self.settings)  # a ValueError (e.g. a file:// image) before any write
        observed = await self.observe(dep.id)
        owner = next((o for o in observed if kind_of(o) == DEPLOYMENT), None)
        if owner is None:
            owner = await self._apply_one(render(dep, self.settings)[0])
            observed.append(owner)
        desired = render(dep, self.settings, owner["metadata"]["uid"])
        actions = plan(dep.id, desired, observed)
        for obj in actions.apply:
            await self._apply_one(obj)
        for ref in actions.delete:
            await self.client.delete((ref.api_version, ref.kind), ref.name)
        if actions.apply or actions.delete:
            log.info("deployment %s: applied %s; deleted %s", dep.id,
                     ", ".join(f"{o['kind']}/{_name(o)}" for o in actions.apply) or "nothing",
                     ", ".join(map(str, actions.delete)) or "nothing")
        else:
            log.info("deployment %s: cluster already matches, nothing applied", dep.id)
        self._track(dep)
        return actions

    async def _apply_one(self, obj: Manifest) -> Manifest:
        try:
            return await self.client.apply(obj)
        except KubeRejected as exc:
            if kind_of(obj) == SCALED_OBJECT and exc.code == 404:
                raise KubeRejected(
                    "minReplicas: 0 needs KEDA (scaledobjects.keda.sh is not installed in the "
                    "cluster): install KEDA, or set kubernetes.keda: false to keep one replica",
                    404, exc.reason) from exc
            raise

    async def delete(self, dep_id: str) -> None:
        """Stop routing to ``dep_id`` and delete its objects (reported as ``Deleting``)."""
        route = self._routes.pop(dep_id, None)
        if route is not None and route.task is not None:
            route.task.cancel()
        if self.table is not None:
            self.table.remove(dep_id)
        current = self._status.get(dep_id) or ModelDeploymentStatus()
        # Reported before the deletes: the watch drops the status once the Deployment is gone.
        self._report(dep_id, ModelDeploymentStatus(
            state=STATE_DELETING, replicas=current.replicas,
            available_replicas=current.available_replicas, model_name=current.model_name,
            model_version=current.model_version))
        existed = False
        for kind in reversed(MANAGED_KINDS):
            try:
                deleted = await self.client.delete(kind, dep_id)
            except KubeRejected as exc:
                if not (kind == SCALED_OBJECT and exc.code == 404):
                    raise
                deleted = False
            existed = existed or (kind == DEPLOYMENT and deleted)
        if not existed and dep_id not in self._deployments:
            self._status.pop(dep_id, None)  # there was nothing to delete: no watch event comes

    # -- status -------------------------------------------------------------------------

    def status(self, dep_id: str) -> ModelDeploymentStatus | None:
        return self._status.get(dep_id)

    def deployment_ids(self) -> list[str]:
        """Deployments mlgate manages that exist in the cluster (applied by any run)."""
        return sorted(self._deployments)

    async def _consume(self, kind: tuple[str, str], labels: dict[str, str] | None,
                       fields: dict[str, str] | None, handler: Callable[[WatchEvent], None],
                       synced: asyncio.Event) -> None:
        async for event in self.client.watch(kind, labels, fields):
            try:
                handler(event)
            except Exception:
                log.exception("handling a %s watch event", kind[1])
            if event.type == "SYNC":
                synced.set()

    @staticmethod
    def _merge(cache: dict[str, Manifest], event: WatchEvent) -> set[str]:
        """Apply ``event`` to ``cache``; the names that changed."""
        if event.type == "SYNC":
            before = set(cache)
            cache.clear()
            cache.update({_name(o): o for o in event.objects})
            return before | set(cache)
        obj = event.objects[0]
        if event.type == "DELETED":
            cache.pop(_name(obj), None)
        else:
            cache[_name(obj)] = obj
        return {_name(obj)}

    def _on_deployment(self, event: WatchEvent) -> None:
        self._refresh(self._merge(self._deployments, event))

    def _on_pod(self, event: WatchEvent) -> None:
        gone = {_name(o): o for o in event.objects} if event.type == "DELETED" else {}
        changed = self._merge(self._pods, event)
        ids = {self._dep_of_pod(n, gone) for n in changed}
        for name in changed - set(self._pods):
            self._warnings.pop(name, None)
        self._refresh(i for i in ids if i)

    def _on_event(self, event: WatchEvent) -> None:
        if event.type == "SYNC":
            self._warnings.clear()
        pods = set()
        for ev in event.objects:
            involved = ev.get("involvedObject") or {}
            if involved.get("kind") != "Pod":
                continue
            pod = involved.get("name", "")
            pods.add(pod)
            if event.type == "DELETED":
                self._warnings.get(pod, {}).pop(_name(ev), None)
            else:
                self._warnings.setdefault(pod, {})[_name(ev)] = ev
        self._refresh(i for i in map(self._dep_of_pod, pods) if i)

    def _dep_of_pod(self, pod_name: str, extra: dict[str, Manifest] | None = None) -> str | None:
        pod = self._pods.get(pod_name) or (extra or {}).get(pod_name)
        if pod is None:
            return None
        return (pod["metadata"].get("labels") or {}).get(LABEL_DEPLOYMENT)

    def _observe_one(self, dep_id: str) -> Observed:
        pods = [p for p in self._pods.values()
                if (p["metadata"].get("labels") or {}).get(LABEL_DEPLOYMENT) == dep_id]
        events = [e for p in pods for e in self._warnings.get(_name(p), {}).values()]
        return derive_status(self._deployments.get(dep_id), pods, events)

    def _refresh(self, dep_ids: Iterable[str]) -> None:
        for dep_id in set(dep_ids):
            if dep_id not in self._deployments and dep_id not in self._routes:
                self._status.pop(dep_id, None)  # deleted, and not (re)applied by this runtime
                continue
            observed = self._observe_one(dep_id)
            route = self._routes.get(dep_id)
            old = self._status.get(dep_id)
            if route is not None and route.identity is not None:
                name, version = route.identity
            else:
                name, version = (old.model_name, old.model_version) if old else ("", "")
            self._report(dep_id, ModelDeploymentStatus(
                state=observed.state, replicas=observed.replicas,
                available_replicas=observed.available_replicas, reason=observed.reason,
                model_name=name, model_version=version))
            if route is not None:
                ready = observed.available_replicas > 0 and observed.state != STATE_DELETING
                self._want(route, [service_address(dep_id, self.settings)] if ready else [])

    def _report(self, dep_id: str, status: ModelDeploymentStatus) -> None:
        old = self._status.get(dep_id)
        status.last_updated_time = old.last_updated_time if old else ""
        if old is not None and old == status:
            return
        status.last_updated_time = utcnow()
        self._status[dep_id] = status
        log.info("deployment %s: %s, %d/%d replica(s) available%s", dep_id, status.state,
                 status.available_replicas, status.replicas,
                 f" ({status.reason})" if status.reason else "")
        if self.on_status is not None:
            self.on_status(dep_id, status)

    # -- routing ------------------------------------------------------------------------

    def _track(self, dep: ModelDeployment) -> None:
        route = self._routes.get(dep.id)
        if route is None:
            route = self._routes[dep.id] = _Route(dep, [])
        route.dep = dep
        if self.table is not None:
            name, version = route.identity or (dep.id, UNKNOWN_VERSION)
            entry = self.table.upsert(dep.id, name, version)
            entry.activation_timeout = (self.settings.activation_timeout
                                        if dep.spec.min_replicas == 0 else 0.0)
            if route.published is None:
                self.table.set_replicas(dep.id, [])
                route.published = []
        self._refresh([dep.id])

    def _want(self, route: _Route, addresses: list[tuple[str, int]]) -> None:
        route.wanted = addresses
        if self.table is None:
            return
        if route.published == addresses and (not addresses or route.identity is not None):
            return
        if route.task is None or route.task.done():
            route.task = asyncio.create_task(self._publish(route))

    async def _publish(self, route: _Route) -> None:
        """Move the routing table to ``route.wanted``; learn the model's identity first."""
        assert self.table is not None and self._session is not None
        dep_id = route.dep.id
        while True:
            wanted = route.wanted
            if wanted and route.identity is None:
                host, port = wanted[0]
                route.identity = await probe_identity(self._session, host, port,
                                                      route.dep.spec.predictor)
                if route.identity is not None and self.table.get(dep_id) is not None:
                    self.table.upsert(dep_id, *route.identity)
                    self._refresh([dep_id])
            if self.table.get(dep_id) is None:
                return  # deleted meanwhile
            if route.published != wanted:
                self.table.set_replicas(dep_id, wanted)
                route.published = wanted
                log.info("deployment %s: routing to %s", dep_id,
                         ", ".join(f"{h}:{p}" for h, p in wanted) or "no replica")
            if route.wanted == wanted:
                return
