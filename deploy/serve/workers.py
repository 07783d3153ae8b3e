"""``mlgate up --workers N``: N processes share the port; one primary, N-1 gateway workers.

Python runs one request at a time per process, so one process uses one core.
With ``--workers N`` the port is bound with ``SO_REUSEPORT`` by N processes and
the kernel spreads connections over them.

Only one process may own the control plane: the SQLite store and its writes,
the reconciler, the autoscaler, the runtime's replicas, the ``-f`` manifests.
That is the **primary**, the process ``mlgate up`` started, which also serves
traffic like any worker. The **workers** (``python -m deploy.serve.worker``) are
gateway-only processes:

* they serve the data plane themselves — ``/model/...``, ``/custom/...``, both
  feedback forms and ``/health`` — through the same filter chain (JWT, Request-ID,
  limits, policy, logging);
* every other path (management API, Swagger UI, OpenAPI, metrics, status, catalog)
  is forwarded unchanged to the primary's private listener on 127.0.0.1, so one
  process answers for the state it owns;
* they follow the primary's routing table: the primary pushes a snapshot over a
  private socketpair whenever it changes (:mod:`deploy.serve.worker_link`), and the
  revoked tokens the moment the API changes them (before the first table, so a worker
  never listens without them);
* rate limits count in one table every process maps (``<data_dir>/ratelimit.table``,
  :mod:`gateway.buckets`), so a caller's quota is the same whichever process serves it;
  the admission bounds (requests in flight per replica, waiting) are split between the
  processes;
* they report back: a request that finds no replica asks the primary for one at
  once (cold start), and every 0.25 s each worker sends its request count and
  in-flight requests per deployment; the primary adds them to its own
  (``Deployment.peer_requests``/``peer_in_flight``) so the autoscaler sees the
  whole gateway's load;
* each has its own storage writer and spool, ``<data_dir>/spool/worker-<i>/``
  (a spool directory is locked by one process), uploading to the same bucket
  under distinct object keys (run ids differ). A spool left by a worker index
  that this run does not start is uploaded by the primary in the background.

A worker that dies is started again (after a second, then doubling up to 30 s);
when the primary goes away, its workers see the link close and stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local.process import die_with_parent
from deploy.serve.worker_link import Link, TableSnapshot, snapshot
from gateway import Observer, RevocationList, RouteTable
from storage import RecordWriter

log = logging.getLogger("mlgate.workers")

PUBLISH_INTERVAL = 0.05
READY_TIMEOUT = 120.0
RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 30.0
WORKER_DIR_PREFIX = "worker-"


def worker_spool_dir(data_path: Path, index: int) -> Path:
    return data_path / "spool" / f"{WORKER_DIR_PREFIX}{index}"


def orphan_spool_dirs(data_path: Path, workers: int) -> list[Path]:
    """Worker spool directories that no worker of a run with ``workers`` processes owns."""
    root = data_path / "spool"
    if not root.is_dir():
        return []
    out = []
    for entry in sorted(root.iterdir()):
        suffix = entry.name.removeprefix(WORKER_DIR_PREFIX)
        if entry.is_dir() and entry.name.startswith(WORKER_DIR_PREFIX) and suffix.isdigit() \
                and not 1 <= int(suffix) < workers:
            out.append(entry)
    return out


class WorkerStartError(RuntimeError):
    """A gateway worker did not start; ``mlgate up`` exits with the reason."""


@dataclass(eq=False)
class _Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    link: Link | None = None
    ready: asyncio.Future[None] | None = None
    sent: TableSnapshot | None = None
    load: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    restarts: int = 0
    task: asyncio.Task[None] | None = None


class WorkerPool:
    """The primary's side: start, feed, watch and stop the gateway workers."""

    def __init__(self, count: int, table: RouteTable, command: list[str],
                 demand: Callable[[str], None] | None = None,
                 observer: Observer | None = None,
                 revocations: Callable[[], RevocationList] | None = None) -> None:
        self.table = table
        self.revocations = revocations
        self.observer = observer
        self.command = command
        self.demand = demand
        self.workers = [_Worker(i) for i in range(1, count)]
        self._stopping = False
        self._publisher: asyncio.Task[None] | None = None
        self._last_requests: dict[tuple[int, str], tuple[int, int]] = {}

    async def start(self) -> None:
        """Start every worker; return once each is listening with the current table."""
        if not self.workers:
            return
        self._publisher = asyncio.create_task(self._publish(), name="mlgate-worker-publisher")
        loop = asyncio.get_running_loop()
        for w in self.workers:
            w.ready = loop.create_future()
            w.task = asyncio.create_task(self._supervise(w), name=f"mlgate-worker-{w.index}")
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await asyncio.gather(*(w.ready for w in self.workers if w.ready is not None))
        except TimeoutError:
            raise WorkerStartError(
                f"gateway workers not ready within {READY_TIMEOUT:g}s") from None

    async def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every worker (they finish in-flight requests and spool their records)."""
        self._stopping = True
        if self._publisher is not None:
            self._publisher.cancel()
        for w in self.workers:
            if w.process is not None and w.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    w.process.send_signal(signal.SIGTERM)
        for w in self.workers:
            if w.process is None:
                continue
            try:
                await asyncio.wait_for(w.process.wait(), timeout)
            except TimeoutError:
                log.warning("gateway worker %d ignored SIGTERM for %gs; killing it", w.index,
                            timeout)
                with contextlib.suppress(ProcessLookupError):
                    w.process.kill()
                await w.process.wait()
        for w in self.workers:
            if w.task is not None:
                w.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await w.task
            if w.link is not None:
                await w.link.close()
        if self._publisher is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher

    # -- one worker ----------------------------------------------------------------------------

    async def _supervise(self, w: _Worker) -> None:
        delay = RESTART_DELAY
        while not self._stopping:
            await self._run_once(w)
            if self._stopping:
                return
            self._forget_load(w)
            w.restarts += 1
            log.warning("gateway worker %d exited (code %s); starting it again in %.0fs",
                        w.index, w.process.returncode if w.process else "?", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_DELAY_MAX)

    async def _run_once(self, w: _Worker) -> None:
        loop = asyncio.get_running_loop()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        if w.ready is None or w.ready.done():
            w.ready = loop.create_future()
        w.sent = None
        try:
            w.process = await asyncio.create_subprocess_exec(
                *self.command, "--index", str(w.index), "--link-fd", str(theirs.fileno()),
                stdin=asyncio.subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
                start_new_session=True, preexec_fn=die_with_parent)
        finally:
            theirs.close()
        w.link = await Link.open(mine)
        if self.revocations is not None:
            w.link.send("revocations", self.revocations())
        self._send_table(w)
        try:
            while True:
                message = await w.link.receive()
                if message is None:
                    break
                self._handle(w, message)
        finally:
            await w.link.close()
            w.link = None
            await w.process.wait()
            if not w.ready.done():
                if w.restarts == 0:  # ``start`` is waiting: mlgate up fails with the reason
                    w.ready.set_exception(WorkerStartError(
                        f"gateway worker {w.index} exited ({w.process.returncode}) before it "
                        "was ready; see its messages above"))
                else:
                    w.ready.cancel()

    def _handle(self, w: _Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            if w.ready is not None and not w.ready.done():
                w.ready.set_result(None)
        elif kind == "demand":
            entry = self.table.get(message[1])
            if entry is not None and entry.on_demand is not None:
                entry.on_demand(message[1])
            elif self.demand is not None:
                self.demand(message[1])
        elif kind == "load":
            self._take_load(w, message[1])
        elif kind == "observed" and self.observer is not None:
            self.observer.take_peer(w.index, message[1])

    def _take_load(self, w: _Worker, load: dict[str, tuple[int, int, int]]) -> None:
        """Fold one worker's report into the primary's entries: request and shed counts as
        increments (a restarted worker counts from zero again), in-flight as the sum of
        every worker's latest report."""
        w.load = load
        for dep_id, (requests, _, shed) in load.items():
            key = (w.index, dep_id)
            last, last_shed = self._last_requests.get(key, (0, 0))
            entry = self.table.get(dep_id)
            if entry is not None and requests > last:
                entry.peer_requests += requests - last
            if entry is not None and shed > last_shed:
                entry.peer_shed += shed - last_shed
            self._last_requests[key] = (requests, shed)
        for entry in self.table.deployments():
            entry.peer_in_flight = sum(x.load.get(entry.id, (0, 0, 0))[1]
                                       for x in self.workers)

    def _forget_load(self, w: _Worker) -> None:
        if self.observer is not None:
            self.observer.peers.retire(w.index)
        w.load = {}
        for key in [k for k in self._last_requests if k[0] == w.index]:
            del self._last_requests[key]
        for entry in self.table.deployments():
            entry.peer_in_flight = sum(x.load.get(entry.id, (0, 0, 0))[1]
                                       for x in self.workers)

    # -- the table and the revoked tokens ------------------------------------------------------

    def publish_revocations(self, revoked: RevocationList) -> None:
        """Every worker gets the new list now (the link keeps the order of messages)."""
        for w in self.workers:
            if w.link is not None:
                w.link.send("revocations", revoked)

    def _send_table(self, w: _Worker) -> None:
        snap = snapshot(self.table)
        if w.link is not None and snap != w.sent:
            w.link.send("table", snap)
            w.sent = snap

    async def _publish(self) -> None:
        """Push the table to every worker when it changed (polled: the reconciler also
        changes entries in place)."""
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL)
            for w in self.workers:
                self._send_table(w)


def worker_command(config: str | None, host: str, port: int, data_dir: str,
                   primary: str, workers: int = 2) -> list[str]:
    """The command line of a worker, less ``--index`` and ``--link-fd``."""
    cmd = [sys.executable, "-m", "deploy.serve.worker", "--host", host, "--port", str(port),
           "--data-dir", data_dir, "--primary", primary, "--workers", str(workers)]
    if config:
        cmd += ["--config", config]
    return cmd


async def drain_orphan_spools(writers: list[RecordWriter]) -> None:
    """Upload what stopped workers left in their spools, then release them."""
    for writer in writers:
        try:
            await writer.start()
            await writer.close()
        except Exception:  # a spool in use or unreadable: leave it for the next start
            log.exception("cannot upload the spool %s", writer.spool.directory)

