"""``mlgate up``: API, gateway and feedback on one port; replicas as local processes, or
(``runtime: kubernetes``) as Deployments in a cluster, driven by the same store, API
and reconciler. Shutdown leaves a cluster's objects in place.

Start-up order: the state store (``-f`` manifests applied to it), the storage
writer, the listening socket, the runtime and the reconciler, then exactly one
line ``mlgate ready on http://HOST:PORT`` on stdout. Replicas start in the
background; deployments are ``Processing`` until they are ``Ready``, and a
request that comes before is held until a replica answers (the cold start).
Shutdown (SIGTERM/SIGINT): stop accepting and finish in-flight requests, stop
the replicas, spool every record and upload for at most
``storage.spool.shutdown_timeout`` seconds (the rest waits in the spool for the
next start), exit 0. The store keeps every deployment for the next
``mlgate up`` with the same data dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import EllipsisType

from aiohttp import web

import feedback
from gateway import (
    MIRROR,
    AuthConfig,
    GatewayConfig,
    Limits,
    OutlierPolicy,
    RouteTable,
    Timeouts,
    create_app,
    server_settings,
)
from gateway.app import OBSERVER
from gateway.errors import set_error_format
from gateway.limits import quiet_protocol_errors
from gateway.observe import Observer
from gateway.openapi import add_openapi_route
from storage import (
    DEFAULT_REDACTED_HEADERS,
    Backend,
    RecordWriter,
    StorageError,
    WriterConfig,
    make_backend,
)

from .api import add_management_api
from .config import ConfigError, Settings
from .keys import build_auth_config
from .local_runtime import LocalRuntime
from .models import ModelDeployment
from .monitoring import control_plane_view
from .reconciler import Reconciler
from .runtime import Runtime, RuntimeProblem
from .store import Store
from .workers import (
    WorkerPool,
    WorkerStartError,
    drain_orphan_spools,
    orphan_spool_dirs,
    worker_command,
)

log = logging.getLogger("mlgate")


def build_backend(settings: Settings) -> Backend:
    """The bucket records go to: ``storage.kind`` local (``<data_dir>/storage``), s3 or gcs."""
    s = settings.storage
    return make_backend(s.kind, root=str(settings.data_path / "storage"), bucket=s.bucket,
                        endpoint_url=s.endpoint_url, region=s.region, timeout=s.timeout)


def build_writer(settings: Settings, spool_dir: Path | None = None) -> RecordWriter:
    """The spooling writer: segments under ``<data_dir>/spool`` (or ``spool_dir``), uploaded
    to the backend. With ``workers: N`` each process gets 1/N of ``spool.max_bytes``."""
    s = settings.storage
    redacted = DEFAULT_REDACTED_HEADERS | {h.lower() for h in s.redact_headers}
    return RecordWriter(build_backend(settings), spool_dir or settings.data_path / "spool",
                        WriterConfig(
        prefix=s.prefix, flush_records=s.flush_records, flush_bytes=s.flush_bytes,
        flush_interval=s.flush_interval, max_pending_records=s.max_pending_records,
        spool_max_bytes=max(1, s.spool.max_bytes // settings.workers),
        feedback_reserve=s.spool.feedback_reserve,
        upload_concurrency=s.spool.upload_concurrency, retry_cap=s.spool.retry_max_delay,
        shutdown_timeout=s.spool.shutdown_timeout, redacted_headers=frozenset(redacted)))


def build_limits(settings: Settings) -> Limits:
    g = settings.gateway
    return Limits(max_headers=g.max_headers, max_header_bytes=g.max_header_bytes,
                  idle_timeout=g.idle_timeout, body_timeout=g.body_timeout,
                  max_json_depth=g.max_json_depth)


def build_app(settings: Settings, table: RouteTable, writer: RecordWriter,
              auth: AuthConfig | EllipsisType | None = ...,
              store: Store | None = None) -> web.Application:
    """The composed app; ``auth`` defaults to what ``settings.auth`` says (secure by default)."""
    g = settings.gateway
    config = GatewayConfig(timeouts=Timeouts(connect=g.connect_timeout, read=g.read_timeout),
                           max_body_bytes=g.max_body_bytes, limits=build_limits(settings),
                           auth=build_auth_config(settings) if auth is ... else auth,
                           outlier=OutlierPolicy(g.eject_after_failures, g.ejection_time,
                                                 g.max_ejection_time),
                           mirror_max_in_flight=g.mirror_max_in_flight,
                           access_log=settings.logging.access_log)
    app = create_app(config, table, writer.offer)
    app[OBSERVER].attach(writer_stats=writer.stats)
    feedback.add_routes(app, writer)
    set_error_format(app, feedback.SEED_PATH, feedback.seed_error_body)
    set_error_format(app, feedback.SDK_PATH, feedback.sdk_error_body)
    add_openapi_route(app, table, feedback.openapi_paths(), feedback.openapi_schemas())
    if store is not None:
        add_management_api(app, store, settings.api.edge_url)
    return app


def build_runtime(settings: Settings) -> Runtime:
    """The runtime that runs replicas: ``runtime: local`` or ``runtime: kubernetes``."""
    if settings.runtime == "kubernetes":
        from .k8s_runtime import KubernetesRuntime  # lightkube only when a cluster is used

        return KubernetesRuntime(settings.kubernetes)
    return LocalRuntime(settings)


def build_reconciler(settings: Settings, store: Store, runtime: Runtime,
                     table: RouteTable) -> Reconciler:
    a = settings.autoscaler
    return Reconciler(store, runtime, table, a.policy(), a.interval)


def apply_manifests(store: Store, deployments: Sequence[ModelDeployment]) -> None:
    """``-f`` manifests go through the store like API calls: create, update or leave alone."""
    for dep in deployments:
        _, what = store.apply_deployment(dep)
        log.info("deployment %s from manifest: %s", dep.id, what)


async def run(settings: Settings, deployments: Sequence[ModelDeployment],
              on_ready: Callable[[str], None] | None = None,
              config_file: str | None = None) -> int:
    """Run the stack until SIGTERM/SIGINT; the exit code for the process. ``config_file``:
    the YAML file ``settings`` came from, for the gateway workers to read too."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    settings.data_path.mkdir(parents=True, exist_ok=True)
    try:
        auth = build_auth_config(settings)
    except ConfigError as exc:
        print(f"mlgate: {exc}", file=sys.stderr, flush=True)
        return 2
    quiet_protocol_errors()
    if auth is None:
        log.warning("authentication is OFF (auth.enabled: false): anyone who can reach "
                    "%s:%s may invoke, manage and read everything", settings.host, settings.port)
    store = Store(settings.data_path / "state.db")
    apply_manifests(store, deployments)
    table = RouteTable()
    writer = build_writer(settings)
    try:
        await writer.start()
    except StorageError as exc:
        print(f"mlgate: {exc}", file=sys.stderr, flush=True)
        store.close()
        return 1
    runtime = build_runtime(settings)
    reconciler = build_reconciler(settings, store, runtime, table)
    runner: web.AppRunner | None = None
    app: web.Application | None = None
    reconciling: asyncio.Task[None] | None = None
    workers: WorkerPool | None = None
    orphans: asyncio.Task[None] | None = None
    code = 0
    try:
        app = build_app(settings, table, writer, auth, store)
        app[OBSERVER].attach(view=control_plane_view(store, runtime))
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=15,
                               **server_settings(build_limits(settings)))
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True,
                           reuse_port=settings.workers > 1 or None, backlog=2048)
        await site.start()  # listening before any replica starts: a busy port starts nothing
        host, port = runner.addresses[0][:2]
        try:
            await runtime.start(reconciler.wake)
        except RuntimeProblem as exc:  # no cluster, credentials, RBAC: nothing can run
            print(f"mlgate: cannot start the {settings.runtime} runtime: {exc}",
                  file=sys.stderr, flush=True)
            return 1
        reconciling = asyncio.create_task(reconciler.run(), name="reconciler")
        if settings.workers > 1:
            workers, orphans = await start_workers(settings, runner, table, reconciler.demand,
                                                   port, config_file, app[OBSERVER])
        url = f"http://{host}:{port}"
        print(f"mlgate ready on {url}", flush=True)
        if on_ready is not None:
            on_ready(url)
        await stop.wait()
        log.info("shutting down")
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", settings.host, settings.port, exc)
        code = 1
    except WorkerStartError as exc:
        log.error("%s", exc)
        code = 1
    finally:
        if workers is not None:
            await workers.stop()
        if orphans is not None:
            await orphans
        if runner is not None:
            await runner.cleanup()
        if reconciling is not None:
            reconciling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconciling
        await runtime.close()
        await writer.close()
        store.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("storage: %s", writer.stats.as_dict())
        if app is not None:
            log.info("mirror: %s", app[MIRROR].stats.as_dict())
    return code


async def start_workers(settings: Settings, runner: web.AppRunner, table: RouteTable,
                        demand: Callable[[str], None], port: int, config_file: str | None,
                        observer: Observer | None = None,
                        ) -> tuple[WorkerPool, asyncio.Task[None]]:
    """The gateway workers of ``workers: N`` (:mod:`deploy.workers`): a private listener
    on 127.0.0.1 for what they forward, the workers themselves, and the upload of spools
    that workers of an earlier run with more of them left behind."""
    internal = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await internal.start()
    primary = f"127.0.0.1:{runner.addresses[-1][1]}"
    orphans = asyncio.create_task(drain_orphan_spools(
        [build_writer(settings, d) for d in orphan_spool_dirs(settings.data_path,
                                                              settings.workers)]),
        name="mlgate-orphan-spools")
    pool = WorkerPool(settings.workers, table, worker_command(
        config_file, settings.host, port, str(settings.data_path), primary), demand, observer)
    try:
        await pool.start()
    except BaseException:
        await pool.stop()
        raise
    log.info("%d gateway worker processes serving %s:%d with this one", settings.workers - 1,
             settings.host, port)
    return pool, orphans
