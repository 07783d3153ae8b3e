"""The local runtime: each deployment's replicas as predictor processes on this machine.

Both predictors run here: ``odahu-ml-server`` (``python -m predictor``) and
``triton`` (``python -m predictor.triton.server``, see :mod:`deploy.local.triton`);
the runtime treats their replicas alike through :class:`ReplicaProcess`.

The runtime holds, per deployment, the desired generation and replica count
(set by :meth:`LocalRuntime.apply`) and numbered replica slots. One loop runs
the pure planner (:mod:`deploy.local.plan`) whenever something changed and
starts a task per action; each replica task starts the process, waits for
health, then watches it (process exit, or ``health_failures`` failed health
checks in a row) until it ends. A replica that ends unexpectedly is restarted
with exponential backoff (:class:`RetryLater`); a model that cannot load makes
the runtime give up on that generation (:class:`GiveUp`) until a new spec comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from deploy.config import Settings
from deploy.control.deployments import ModelDeployment
from deploy.control.runtime import GiveUp, Observed, RetryLater, backoff
from deploy.local.plan import (
    EXITED,
    READY,
    STARTING,
    STOPPING,
    Forget,
    ReplicaView,
    Start,
    Stop,
    Target,
    next_retry,
    plan,
)
from deploy.local.process import (
    ReplicaProcess,
    StartReplica,
    model_uri,
    start_replica,
    stop_replica,
)
from deploy.local.triton import start_triton_replica
from deploy.local.zygote import Zygote
from gateway import ReplicaUsage

log = logging.getLogger("mlgate.runtime")
READY_RESET_AFTER = 60.0  # a replica that ran this long before crashing restarts its backoff


def starter_for(predictor: str) -> StartReplica:
    """How replicas of ``predictor`` start; :class:`GiveUp` for one the local runtime lacks."""
    if predictor == "odahu-ml-server":
        return start_replica
    if predictor == "triton":
        return start_triton_replica
    raise GiveUp(f"the local runtime cannot run the {predictor!r} predictor")


@dataclass(eq=False)
class Slot:
    index: int
    generation: int
    phase: str = STARTING
    process: ReplicaProcess | None = None
    task: asyncio.Task[None] | None = None
    failures: int = 0
    retry_at: float = 0.0
    ready_since: float | None = None

    def view(self) -> ReplicaView:
        return ReplicaView(self.index, self.generation, self.phase, self.retry_at)


@dataclass(eq=False)
class Unit:
    """Everything the runtime holds for one deployment."""

    id: str
    deployment: ModelDeployment
    replicas: int = 0
    deleted: bool = False
    uri: str = ""
    start: StartReplica | None = None
    failure: str = ""
    problem: str = ""
    model_name: str = ""
    model_version: str = ""
    documents: tuple[tuple[str, bytes], ...] = ()
    slots: dict[int, Slot] = field(default_factory=dict)

    @property
    def generation(self) -> int:
        return self.deployment.generation


class LocalRuntime:
    autoscales = False  # the reconciler's autoscaler decides the replica counts

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.local = settings.local
        self.log_dir = settings.data_path / "logs"
        self.tracking_uri = self.local.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        self.zygote = Zygote(self.log_dir / "predictor-zygote.log", self._replica_env()) \
            if self.local.zygote != "never" else None
        self._units: dict[str, Unit] = {}
        self._wake = asyncio.Event()
        self._on_change: Callable[[], None] = lambda: None
        self._loop_task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the Runtime interface ------------------------------------------------------------------

    async def start(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.local.health_timeout))
        self._loop_task = asyncio.create_task(self._loop(), name="local-runtime")
        if self.zygote is not None and self.local.zygote == "always":
            self.zygote.start()

    def apply(self, deployment: ModelDeployment, replicas: int) -> None:
        spec = deployment.spec
        if self.zygote is not None and spec.min_replicas == 0 \
                and spec.predictor == "odahu-ml-server" and self._loop_task is not None:
            self.zygote.start()  # auto: a request will wait for this one's replicas to start
        unit = self._units.get(deployment.id)
        if unit is None:
            unit = self._units[deployment.id] = Unit(deployment.id, deployment)
            self._new_generation(unit, deployment)
        elif unit.generation != deployment.generation or unit.deleted:
            self._new_generation(unit, deployment)
        elif unit.replicas == replicas:
            return
        unit.replicas = replicas
        self._wake.set()

    def delete(self, deployment_id: str) -> None:
        unit = self._units.get(deployment_id)
        if unit is not None and not unit.deleted:
            unit.deleted = True
            self._wake.set()

    def observe(self, deployment_id: str) -> Observed | None:
        unit = self._units.get(deployment_id)
        if unit is None:
            return None
        slots = list(unit.slots.values())
        current_ready = [s for s in slots if s.generation == unit.generation and s.phase == READY]
        return Observed(
            generation=unit.generation,
            replicas=sum(1 for s in slots if s.phase in (STARTING, READY, STOPPING)),
            available=len(current_ready),
            endpoints=tuple(s.process.address for s in sorted(slots, key=lambda s: s.index)
                            if s.phase == READY and s.process is not None),
            model_name=unit.model_name, model_version=unit.model_version,
            documents=unit.documents, failure=unit.failure, problem=unit.problem)

    def known(self) -> set[str]:
        return set(self._units)

    # -- for monitoring -------------------------------------------------------------------------

    def desired_replicas(self, deployment_id: str) -> int | None:
        """The replica count last asked for (the autoscaler's decision), if any."""
        unit = self._units.get(deployment_id)
        return None if unit is None or unit.deleted else unit.replicas

    def replica_usage(self, deployment_id: str) -> list[ReplicaUsage]:
        """CPU seconds and resident memory of each running replica process (psutil)."""
        unit = self._units.get(deployment_id)
        out = []
        for slot in sorted(unit.slots.values(), key=lambda s: s.index) if unit else ():
            usage = slot.process.usage() if slot.process is not None else None
            if usage is not None:
                out.append(ReplicaUsage(f"{unit.id}-{slot.index}", *usage))
        return out

    async def close(self) -> None:
        for unit in self._units.values():
            unit.deleted = True
        if self._loop_task is not None:
            self._step_all()
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self.zygote is not None:
            await self.zygote.close()

    # -- the loop -------------------------------------------------------------------------------

    def _new_generation(self, unit: Unit, deployment: ModelDeployment) -> None:
        unit.deployment = deployment
        unit.deleted = False
        unit.failure = unit.problem = ""
        try:
            unit.start = starter_for(deployment.spec.predictor)
            if unit.start is start_replica and self.zygote is not None:
                unit.start = functools.partial(start_replica, fork=self.zygote.fork)
            unit.uri = model_uri(deployment.spec.image, self.tracking_uri)
        except GiveUp as exc:
            unit.failure = str(exc)
            log.warning("deployment %s: %s", unit.id, exc)

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                wake_at = self._step_all()
            except Exception:  # a bug must not stop the runtime: log it, try again soon
                log.exception("local runtime step failed; retrying")
                wake_at = time.monotonic() + 1.0
            timeout = None if wake_at is None else max(0.0, wake_at - time.monotonic())
            with contextlib.suppress(TimeoutError):  # not wait_for: on 3.11 it can swallow
                async with asyncio.timeout(timeout):  # the cancel that stops the loop
                    await self._wake.wait()

    def _step_all(self) -> float | None:
        """Plan and start the actions for every deployment; the next time a backoff ends."""
        now = time.monotonic()
        wake_at: list[float] = []
        for unit in list(self._units.values()):
            views = [s.view() for s in unit.slots.values()]
            target = None if unit.deleted else Target(unit.generation, unit.replicas,
                                                      failed=bool(unit.failure))
            for action in plan(target, views, now):
                self._act(unit, action)
            if unit.deleted and not unit.slots:
                del self._units[unit.id]
                self._on_change()
            retry = next_retry([s.view() for s in unit.slots.values()], now)
            if retry is not None:
                wake_at.append(retry)
        return min(wake_at, default=None)

    def _act(self, unit: Unit, action: Start | Stop | Forget) -> None:
        if isinstance(action, Start):
            old = unit.slots.get(action.index)
            slot = Slot(action.index, unit.generation,
                        failures=old.failures if old is not None else 0)
            unit.slots[action.index] = slot
            slot.task = self._spawn(self._run_replica(unit, slot))
        elif isinstance(action, Stop):
            slot = unit.slots[action.index]
            slot.phase = STOPPING
            self._spawn(self._stop(unit, slot))
        else:
            del unit.slots[action.index]
        self._on_change()

    def _spawn(self, coro) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("replica task failed", exc_info=task.exception())
            self._wake.set()

    # -- one replica ----------------------------------------------------------------------------

    def _replica_env(self) -> dict[str, str] | None:
        return {"MLFLOW_TRACKING_URI": self.tracking_uri} if self.tracking_uri else None

    async def _run_replica(self, unit: Unit, slot: Slot) -> None:
        env = self._replica_env()
        assert unit.start is not None  # a unit without a starter has failed: nothing starts
        try:
            replica = await unit.start(unit.id, slot.index, unit.uri, self.log_dir,
                                       self.local.replica_start_timeout, env=env)
        except GiveUp as exc:
            self._ended(unit, slot, math.inf)
            if slot.generation == unit.generation:
                unit.failure = f"model cannot be loaded: {exc}"
                log.error("deployment %s: %s", unit.id, unit.failure)
            return
        except (RetryLater, OSError) as exc:
            self._crashed(unit, slot, str(exc))
            return
        slot.process, slot.phase, slot.ready_since = replica, READY, time.monotonic()
        if slot.generation == unit.generation:
            unit.model_name, unit.model_version = replica.model_name, replica.model_version
            unit.documents = tuple(sorted(replica.documents.items()))
            unit.problem = ""
        log.info("replica %s-%d ready on %s:%d (model %s %s)", unit.id, slot.index,
                 replica.host, replica.port, replica.model_name, replica.model_version)
        self._on_change()
        try:
            reason = await self._watch(replica)
        except Exception as exc:  # never leave a slot "ready" with nobody watching it
            log.exception("watching replica %s-%d failed", unit.id, slot.index)
            reason = f"watching the replica failed: {exc}"
        await stop_replica(replica, self.local.replica_stop_timeout)
        self._crashed(unit, slot, reason)

    async def _watch(self, replica: ReplicaProcess) -> str:
        """Wait until the replica exits or fails its health checks; the reason."""
        assert self._session is not None
        exited = asyncio.ensure_future(replica.process.wait())
        url = f"http://{replica.host}:{replica.port}{replica.health_path}"
        failures = 0
        try:
            while True:
                done, _ = await asyncio.wait({exited}, timeout=self.local.health_interval)
                if done:
                    last = replica.last_log_line()
                    return f"exit code {replica.process.returncode}" + (f": {last}" if last else "")
                try:
                    async with self._session.get(url) as resp:
                        healthy = resp.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    healthy = False
                failures = 0 if healthy else failures + 1
                if failures >= self.local.health_failures:
                    return f"failed {failures} health checks in a row"
        finally:
            exited.cancel()

    def _crashed(self, unit: Unit, slot: Slot, reason: str) -> None:
        now = time.monotonic()
        if slot.ready_since is not None and now - slot.ready_since >= READY_RESET_AFTER:
            slot.failures = 0
        slot.failures += 1
        delay = backoff(slot.failures, self.local.restart_backoff, self.local.restart_backoff_max)
        if slot.phase != STOPPING:
            unit.problem = f"replica {unit.id}-{slot.index}: {reason}"
            log.warning("%s; restarting in %.1fs", unit.problem, delay)
        self._ended(unit, slot, now + delay)

    def _ended(self, unit: Unit, slot: Slot, retry_at: float) -> None:
        if slot.phase != STOPPING and unit.slots.get(slot.index) is slot:
            slot.phase, slot.retry_at, slot.process = EXITED, retry_at, None
        self._wake.set()
        self._on_change()

    async def _stop(self, unit: Unit, slot: Slot) -> None:
        if slot.task is not None and not slot.task.done():
            slot.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await slot.task
        if slot.process is not None:
            await stop_replica(slot.process, self.local.replica_stop_timeout)
        if unit.slots.get(slot.index) is slot:
            del unit.slots[slot.index]
        self._wake.set()
        self._on_change()
