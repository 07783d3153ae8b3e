"""``mlgate up``: API, gateway and feedback on one port, replicas as local processes.

With ``runtime: kubernetes`` nothing runs locally: each deployment is applied to the
cluster (``KubernetesRuntime``) and the gateway routes to its Service; shutdown leaves
the cluster's objects in place.

Start-up order: storage writer, replicas (healthy), then the listening socket,
then exactly one line ``mlgate ready on http://HOST:PORT`` on stdout.
Shutdown (SIGTERM/SIGINT): stop accepting and finish in-flight requests, stop
the replicas, flush every record, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

import feedback
from gateway import GatewayConfig, RouteTable, Timeouts, create_app
from gateway.errors import set_error_format
from storage import DEFAULT_REDACTED_HEADERS, LocalBackend, RecordWriter, WriterConfig

from .config import Settings
from .k8s_client import KubeError, KubeRejected
from .k8s_runtime import KubernetesRuntime
from .local_runtime import (
    ReplicaProcess,
    ReplicaStartError,
    local_model_path,
    start_replica,
    stop_replica,
)
from .models import STATE_READY, ModelDeployment

log = logging.getLogger("mlgate")


@dataclass
class Stack:
    settings: Settings
    app: web.Application
    table: RouteTable
    writer: RecordWriter
    replicas: dict[str, list[ReplicaProcess]]


def build_writer(settings: Settings) -> RecordWriter:
    s = settings.storage
    backend = LocalBackend(settings.data_path / "storage")
    redacted = DEFAULT_REDACTED_HEADERS | {h.lower() for h in s.redact_headers}
    return RecordWriter(backend, WriterConfig(
        prefix=s.prefix, flush_records=s.flush_records, flush_bytes=s.flush_bytes,
        flush_interval=s.flush_interval, max_pending_records=s.max_pending_records,
        redacted_headers=frozenset(redacted)))


def build_app(settings: Settings, table: RouteTable, writer: RecordWriter) -> web.Application:
    g = settings.gateway
    config = GatewayConfig(timeouts=Timeouts(connect=g.connect_timeout, read=g.read_timeout),
                           max_body_bytes=g.max_body_bytes)
    app = create_app(config, table, writer.offer)
    feedback.add_routes(app, writer)
    set_error_format(app, feedback.SEED_PATH, feedback.seed_error_body)
    set_error_format(app, feedback.SDK_PATH, feedback.sdk_error_body)
    return app


async def start_deployment(settings: Settings, dep: ModelDeployment,
                           table: RouteTable) -> list[ReplicaProcess]:
    """Start ``max(1, minReplicas)`` replicas and publish them in the routing table."""
    try:
        model_path = local_model_path(dep.spec.image)
    except ValueError as exc:
        raise ReplicaStartError(f"deployment {dep.id}: {exc}") from exc
    count = max(1, dep.spec.min_replicas)
    logs = settings.data_path / "logs"
    results = await asyncio.gather(*(
        start_replica(dep.id, i, model_path, logs, settings.local.replica_start_timeout)
        for i in range(count)), return_exceptions=True)
    started = [r for r in results if isinstance(r, ReplicaProcess)]
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        await asyncio.gather(*(stop_replica(r, settings.local.replica_stop_timeout)
                               for r in started))
        raise failures[0]
    first = started[0]
    table.upsert(dep.id, first.model_name or dep.id, first.model_version or "1.0")
    table.set_replicas(dep.id, [r.address for r in started])
    dep.status.state = STATE_READY
    dep.status.replicas = dep.status.available_replicas = len(started)
    dep.status.model_name, dep.status.model_version = first.model_name, first.model_version
    log.info("deployment %s ready: model %s %s, %d replica(s)", dep.id, first.model_name,
             first.model_version, len(started))
    return started


async def start_kubernetes(settings: Settings, deployments: Sequence[ModelDeployment],
                           table: RouteTable) -> KubernetesRuntime:
    """``runtime: kubernetes``: apply each deployment; the runtime routes to its Service.

    The seam for the management API's reconciler: it calls ``runtime.apply``/``delete``.
    """
    runtime = KubernetesRuntime(settings.kubernetes, table)
    await runtime.start()
    try:
        for dep in deployments:
            try:
                await runtime.apply(dep)
            except ValueError as exc:
                raise KubeRejected(f"deployment {dep.id}: {exc}") from exc
    except BaseException:
        await runtime.close()
        raise
    return runtime


async def run(settings: Settings, deployments: Sequence[ModelDeployment],
              on_ready: Callable[[str], None] | None = None) -> int:
    """Run the stack until SIGTERM/SIGINT; the exit code for the process."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    settings.data_path.mkdir(parents=True, exist_ok=True)
    table = RouteTable()
    writer = build_writer(settings)
    await writer.start()
    replicas: dict[str, list[ReplicaProcess]] = {}
    kube: KubernetesRuntime | None = None
    runner: web.AppRunner | None = None
    code = 0
    try:
        if settings.runtime == "kubernetes":
            starting = asyncio.ensure_future(start_kubernetes(settings, deployments, table))
        else:
            starting = asyncio.gather(*(start_deployment(settings, d, table)
                                        for d in deployments), return_exceptions=True)
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(BaseException):
                await starting
            log.info("stopped while starting")
            return 0
        stopped.cancel()
        if settings.runtime == "kubernetes":
            kube = starting.result()
        else:
            failures = []
            for dep, result in zip(deployments, starting.result(), strict=True):
                if isinstance(result, BaseException):
                    failures.append(result)
                else:
                    replicas[dep.id] = result
            if failures:
                raise failures[0]
        app = build_app(settings, table, writer)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=15)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True,
                           backlog=2048)
        await site.start()
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}"
        print(f"mlgate ready on {url}", flush=True)
        if on_ready is not None:
            on_ready(url)
        await stop.wait()
        log.info("shutting down")
    except (ReplicaStartError, KubeError) as exc:
        log.error("%s", exc)
        print(f"mlgate: {exc}", file=sys.stderr, flush=True)
        code = 1
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", settings.host, settings.port, exc)
        code = 1
    finally:
        if runner is not None:
            await runner.cleanup()
        if kube is not None:
            await kube.close()  # the deployments stay: a cluster outlives the gateway
        await asyncio.gather(*(stop_replica(r, settings.local.replica_stop_timeout)
                               for group in replicas.values() for r in group))
        await writer.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("records written: %s, dropped: %s", dict(writer.stats.written),
                 dict(writer.stats.dropped))
    return code
