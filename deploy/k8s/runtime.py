"""The Kubernetes runtime: ModelDeployments become Deployments, Services and autoscalers.

It implements :class:`deploy.control.runtime.Runtime`, so ``mlgate up`` with
``runtime: kubernetes`` uses the same store, API, reconciler and CLI as the local
runtime. A thin async shell around pure parts: ``k8s_manifests.render`` (what should
exist), ``k8s_plan.plan`` (what to apply or delete), ``k8s_status`` (what the cluster
says) and ``k8s_client`` (the only module talking to the API).

- ``apply(dep, replicas)`` records the wish; a worker task then lists the deployment's
  objects, applies what changed (server-side apply) and deletes what is no longer
  wanted — idempotent, so after a restart it writes nothing when nothing changed
  (re-adoption). ``replicas`` is ignored: in the cluster the HPA (``minReplicas >= 1``)
  or KEDA (``minReplicas: 0``) owns the replica count (``autoscales = True`` tells the
  reconciler not to run the local autoscaler for this runtime).
- ``delete(id)`` records the wish; the worker deletes the objects (the Deployment's pods
  go with it through the garbage collector); ``observe`` answers None once the
  Deployment is gone.
- ``observe(id)`` comes from watches on the managed Deployments, their pods and the
  namespace's Warning events: the traffic address is the deployment's Service while
  any replica is available; ``available`` counts the replicas of the applied spec;
  failures (``ImagePullBackOff``, ``ProgressDeadlineExceeded``, an apply the API
  refused, an image the cluster cannot run) are the ``failure``; the model's name and
  version are asked from the predictor through the Service once the spec rolled out
  (before the first traffic goes there, so the first answers carry them).

Errors: ``KubeUnavailable`` (a :class:`RetryLater`) is retried with backoff;
``KubeRejected`` and an image only the local runtime can run (a :class:`GiveUp`) fail
the deployment until its spec changes. Only deployments this process was asked about
are touched: managed objects in the namespace that the store does not know are left
alone (and logged), never deleted, so a lost or different state store cannot empty
the cluster. Closing the runtime leaves every object in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import aiohttp

from deploy.config import KubernetesSettings
from deploy.control.deployments import (
    STATE_DELETING,
    STATE_FAILED,
    STATE_PROCESSING,
    STATE_READY,
    ModelDeployment,
)
from deploy.control.identity import probe_identity
from deploy.control.runtime import GiveUp, Observed, RetryLater, backoff
from deploy.k8s.client import EVENT, POD, KubeClient, KubeRejected, KubeUnavailable, WatchEvent
from deploy.k8s.manifests import (
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
from deploy.k8s.plan import Plan, plan
from deploy.k8s.status import current_available, derive_status, observed_generation

log = logging.getLogger("mlgate.kubernetes")

RETRY_BASE = 1.0
RETRY_MAX = 60.0
IDENTITY_RETRY = 2.0


def _name(obj: Manifest) -> str:
    return obj["metadata"]["name"]


@dataclass(eq=False)
class Unit:
    """What the runtime was asked about one deployment, and how far it got."""

    id: str
    deployment: ModelDeployment | None
    """None when the runtime was only told to delete (e.g. after a restart while Deleting)."""
    deleted: bool = False
    gone: bool = False
    """Deleted: every object's DELETE was accepted."""
    applied: int = 0
    """The ModelDeployment generation carried out in the cluster (or given up on)."""
    kube_generation: int = 0
    """The Deployment's ``metadata.generation`` once ``applied`` was carried out."""
    failure: str = ""
    problem: str = ""
    failures: int = 0
    retry_at: float = 0.0
    identity: tuple[str, str] | None = None
    identity_generation: int = 0
    identity_at: float = 0.0
    identity_attempts: int = 0
    probed: bool = False
    """The predictor was asked once (whatever it said): traffic may go to the Service."""
    probing: asyncio.Task[None] | None = None

    @property
    def generation(self) -> int:
        return self.deployment.generation if self.deployment is not None else 0


class KubernetesRuntime:
    autoscales = True

    def __init__(self, settings: KubernetesSettings, client: KubeClient | None = None) -> None:
        self.settings = settings
        self.client = client or KubeClient(settings)
        self._units: dict[str, Unit] = {}
        self._deployments: dict[str, Manifest] = {}
        self._pods: dict[str, Manifest] = {}
        self._warnings: dict[str, dict[str, Manifest]] = {}  # pod name -> event name -> event
        self._on_change: Callable[[], None] = lambda: None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._session: aiohttp.ClientSession | None = None

    # -- the Runtime interface ----------------------------------------------------------

    async def start(self, on_change: Callable[[], None]) -> None:
        """Connect and watch; returns once the cluster's current state is known.

        Raises a :class:`GiveUp` (configuration, credentials, RBAC) or a
        :class:`RetryLater` (the API cannot be reached) — at start both are fatal.
        """
        self._on_change = on_change
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
        if self._deployments:
            log.info("managed deployments in namespace %s: %s", self.settings.namespace,
                     ", ".join(sorted(self._deployments)))
        self._tasks.append(asyncio.create_task(self._work(), name="kubernetes-runtime"))

    def apply(self, deployment: ModelDeployment, replicas: int) -> None:
        """Bring the cluster to ``deployment``; ``replicas`` is ignored (HPA/KEDA own it)."""
        unit = self._units.get(deployment.id)
        if unit is None:
            self._units[deployment.id] = Unit(deployment.id, deployment)
        elif unit.deleted or unit.generation != deployment.generation:
            unit.deployment = deployment
            unit.deleted = unit.gone = False
            unit.failure = unit.problem = ""
            unit.failures, unit.retry_at, unit.identity_attempts = 0, 0.0, 0
        else:
            return
        self._wake.set()

    def delete(self, deployment_id: str) -> None:
        unit = self._units.get(deployment_id)
        if unit is None:
            unit = self._units[deployment_id] = Unit(deployment_id, None)
        if not unit.deleted:
            unit.deleted, unit.gone = True, False
            unit.failures, unit.retry_at, unit.problem = 0, 0.0, ""
            self._wake.set()

    def observe(self, deployment_id: str) -> Observed | None:
        unit = self._units.get(deployment_id)
        if unit is None:
            return None
        obj = self._deployments.get(deployment_id)
        if unit.gone and obj is None:
            return None
        state = derive_status(obj, self._pods_of(deployment_id), self._events_of(deployment_id))
        current = unit.applied == unit.generation and not unit.deleted and not unit.failure
        available = current_available(obj, unit.kube_generation) if current else 0
        seen = current and observed_generation(obj) >= unit.kube_generation
        failure = unit.failure or (state.reason if state.state == STATE_FAILED else "")
        problem = unit.problem or (state.reason if state.state == STATE_PROCESSING else "")
        serving = (state.available_replicas > 0 and state.state != STATE_DELETING
                   and (unit.probed or unit.identity is not None))
        name, version = unit.identity or ("", "")
        return Observed(
            generation=unit.applied, replicas=state.replicas, available=available,
            endpoints=(service_address(deployment_id, self.settings),) if serving else (),
            model_name=name, model_version=version, failure=failure, problem=problem,
            verified=seen and state.state == STATE_READY)

    def known(self) -> set[str]:
        return set(self._units)

    async def close(self) -> None:
        """Stop watching; objects in the cluster stay (the cluster outlives the gateway)."""
        tasks = self._tasks + [u.probing for u in self._units.values() if u.probing]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.client.close()

    # -- the worker: applies and deletes, one at a time ---------------------------------

    async def _work(self) -> None:
        while True:
            self._wake.clear()
            wake_at: list[float] = []
            for unit in list(self._units.values()):
                try:
                    when = await self._step(unit)
                except Exception:  # a bug must not stop the runtime: log it, try again soon
                    log.exception("deployment %s: reconcile step failed; retrying", unit.id)
                    when = time.monotonic() + RETRY_BASE
                if when is not None:
                    wake_at.append(when)
            timeout = None if not wake_at else max(0.0, min(wake_at) - time.monotonic())
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow
                async with asyncio.timeout(timeout):  # the cancel that stops the loop
                    await self._wake.wait()

    async def _step(self, unit: Unit) -> float | None:
        """Carry out what ``unit`` waits for, if it is due; when to look again."""
        now = time.monotonic()
        if unit.retry_at > now:
            return unit.retry_at
        if unit.deleted and not unit.gone:
            await self._attempt(unit, self._delete_objects)
        elif not unit.deleted and unit.applied != unit.generation:
            await self._attempt(unit, self._sync)
        if unit.retry_at > now:
            return unit.retry_at
        if unit.gone and unit.id not in self._deployments:
            self._forget(unit)
            return None
        return self._maybe_probe(unit)

    async def _attempt(self, unit: Unit, action: Callable[[Unit], Awaitable[object]]) -> None:
        generation = unit.generation
        try:
            await action(unit)
        except RetryLater as exc:
            unit.failures += 1
            delay = backoff(unit.failures, RETRY_BASE, RETRY_MAX)
            unit.retry_at = time.monotonic() + delay
            unit.problem = str(exc)
            log.warning("deployment %s: %s; retrying in %.1fs", unit.id, exc, delay)
        except GiveUp as exc:
            if unit.deleted:  # e.g. Forbidden: nothing more this process can do
                log.error("deployment %s: cannot delete: %s", unit.id, exc)
                unit.gone = True
            elif unit.generation == generation:
                unit.applied, unit.failure = generation, str(exc)
                log.error("deployment %s: %s", unit.id, exc)
        else:
            unit.failures, unit.retry_at, unit.problem = 0, 0.0, ""
        self._on_change()

    async def _sync(self, unit: Unit) -> Plan:
        """Apply ``unit.deployment`` to the cluster; the plan that was carried out."""
        dep = unit.deployment
        assert dep is not None  # only applied units are synced
        try:
            render(dep, self.settings)  # an image the cluster cannot run, before any write
        except ValueError as exc:
            raise GiveUp(str(exc)) from None
        found = await self._list_objects(dep.id)
        owner = next((o for o in found if kind_of(o) == DEPLOYMENT), None)
        created = []
        if owner is None:  # first, so that the other objects can name it as their owner
            owner = await self._apply_one(render(dep, self.settings)[0])
            found.append(owner)
            created.append(owner)
        desired = render(dep, self.settings, owner["metadata"]["uid"])
        actions = plan(dep.id, desired, found)
        for obj in actions.apply:
            stored = await self._apply_one(obj)
            if kind_of(stored) == DEPLOYMENT:
                owner = stored
        for ref in actions.delete:
            await self.client.delete((ref.api_version, ref.kind), ref.name)
        if created or actions.apply or actions.delete:
            log.info("deployment %s: applied %s; deleted %s", dep.id,
                     ", ".join(f"{o['kind']}/{_name(o)}" for o in created + actions.apply)
                     or "nothing",
                     ", ".join(map(str, actions.delete)) or "nothing")
        else:
            log.info("deployment %s: cluster already matches, nothing applied", dep.id)
        if unit.deployment is dep:
            unit.applied = dep.generation
            unit.kube_generation = int(owner["metadata"].get("generation") or 0)
            unit.failure = ""
        return actions

    async def _list_objects(self, dep_id: str) -> list[Manifest]:
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

    async def _delete_objects(self, unit: Unit) -> None:
        for kind in reversed(MANAGED_KINDS):
            try:
                await self.client.delete(kind, unit.id)
            except KubeRejected as exc:
                if not (kind == SCALED_OBJECT and exc.code == 404):
                    raise
        log.info("deployment %s: objects deleted", unit.id)
        unit.gone = True

    def _forget(self, unit: Unit) -> None:
        if unit.probing is not None:
            unit.probing.cancel()
        del self._units[unit.id]
        self._on_change()

    # -- the model's identity, asked from the predictor through the Service -------------

    def _maybe_probe(self, unit: Unit) -> float | None:
        """Start asking the predictor which model it serves, once the applied spec serves."""
        if unit.deleted or unit.deployment is None or unit.identity_generation == unit.generation:
            return None
        observed = self.observe(unit.id)
        if observed is None or observed.available == 0:  # no pod of this spec serves yet
            return None
        if unit.probing is not None and not unit.probing.done():
            return None
        due = unit.identity_at + backoff(unit.identity_attempts, IDENTITY_RETRY, RETRY_MAX)
        if unit.identity_attempts and time.monotonic() < due:
            return due  # the predictor did not say; ask again less and less often
        unit.identity_at = time.monotonic()
        unit.identity_attempts += 1
        unit.probing = asyncio.create_task(self._probe(unit, unit.generation))
        return None

    async def _probe(self, unit: Unit, generation: int) -> None:
        assert self._session is not None and unit.deployment is not None
        host, port = service_address(unit.id, self.settings)
        identity = await probe_identity(self._session, host, port, unit.deployment.spec.predictor)
        if identity is not None and unit.generation == generation:
            unit.identity, unit.identity_generation = identity, generation
            unit.identity_attempts = 0
            log.info("deployment %s serves model %s %s", unit.id, *identity)
        unit.probed = True
        self._on_change()
        self._wake.set()

    # -- watches ------------------------------------------------------------------------

    async def _consume(self, kind: tuple[str, str], labels: dict[str, str] | None,
                       fields: dict[str, str] | None, handler: Callable[[WatchEvent], None],
                       synced: asyncio.Event) -> None:
        async with contextlib.aclosing(self.client.watch(kind, labels, fields)) as events:
            async for event in events:  # closed here when cancelled, not by the loop's GC
                try:
                    handler(event)
                except Exception:
                    log.exception("handling a %s watch event", kind[1])
                if event.type == "SYNC":
                    synced.set()
                self._wake.set()
                self._on_change()

    @staticmethod
    def _merge(cache: dict[str, Manifest], event: WatchEvent) -> None:
        if event.type == "SYNC":
            cache.clear()
            cache.update({_name(o): o for o in event.objects})
            return
        obj = event.objects[0]
        if event.type == "DELETED":
            cache.pop(_name(obj), None)
        else:
            cache[_name(obj)] = obj

    def _on_deployment(self, event: WatchEvent) -> None:
        self._merge(self._deployments, event)

    def _on_pod(self, event: WatchEvent) -> None:
        before = set(self._pods)
        self._merge(self._pods, event)
        gone = before - set(self._pods)
        if event.type == "DELETED":
            gone |= {_name(o) for o in event.objects}
        for name in gone:
            self._warnings.pop(name, None)

    def _on_event(self, event: WatchEvent) -> None:
        if event.type == "SYNC":
            self._warnings.clear()
        for ev in event.objects:
            involved = ev.get("involvedObject") or {}
            if involved.get("kind") != "Pod":
                continue
            pod = involved.get("name", "")
            if event.type == "DELETED":
                self._warnings.get(pod, {}).pop(_name(ev), None)
            else:
                self._warnings.setdefault(pod, {})[_name(ev)] = ev

    def _pods_of(self, dep_id: str) -> list[Manifest]:
        return [p for p in self._pods.values()
                if (p["metadata"].get("labels") or {}).get(LABEL_DEPLOYMENT) == dep_id]

    def _events_of(self, dep_id: str) -> Iterable[Manifest]:
        return [e for p in self._pods_of(dep_id)
                for e in self._warnings.get(_name(p), {}).values()]


__all__ = ["KubernetesRuntime", "Unit"]
