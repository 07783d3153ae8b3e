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
from .autoscaler import ScalingPolicy
from .config import ConfigError, Settings
from .keys import build_auth_config
from .local_runtime import LocalRuntime
from .models import ModelDeployment
from .monitoring import control_plane_view
from .reconciler import Reconciler
from .runtime import Runtime, RuntimeProblem
from .store import Store

log = logging.getLogger("mlgate")


def build_backend(settings: Settings) -> Backend:
    """The bucket records go to: ``storage.kind`` local (``<data_dir>/storage``), s3 or gcs."""
    s = settings.storage
    return make_backend(s.kind, root=str(settings.data_path / "storage"), bucket=s.bucket,
                        endpoint_url=s.endpoint_url, region=s.region, timeout=s.timeout)


def build_writer(settings: Settings) -> RecordWriter:
    """The spooling writer: segments under ``<data_dir>/spool``, uploaded to the backend."""
    s = settings.storage
    redacted = DEFAULT_REDACTED_HEADERS | {h.lower() for h in s.redact_headers}
    return RecordWriter(build_backend(settings), settings.data_path / "spool", WriterConfig(
        prefix=s.prefix, flush_records=s.flush_records, flush_bytes=s.flush_bytes,
        flush_interval=s.flush_interval, max_pending_records=s.max_pending_records,
        spool_max_bytes=s.spool.max_bytes, feedback_reserve=s.spool.feedback_reserve,
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
    defaults = ScalingPolicy(target_concurrency=a.target_concurrency, window=a.window,
                             scale_down_delay=a.scale_down_delay,
                             scale_to_zero_after=a.scale_to_zero_after,
                             cold_start_timeout=a.cold_start_timeout)
    return Reconciler(store, runtime, table, defaults, a.interval)


def apply_manifests(store: Store, deployments: Sequence[ModelDeployment]) -> None:
    """``-f`` manifests go through the store like API calls: create, update or leave alone."""
    for dep in deployments:
        _, what = store.apply_deployment(dep)
        log.info("deployment %s from manifest: %s", dep.id, what)


async def run(settings: Settings, deployments: Sequence[ModelDeployment],
              on_ready: Callable[[str], None] | None = None) -> int:
    """Run the stack until SIGTERM/SIGINT; the exit code for the process."""
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
    code = 0
    try:
        app = build_app(settings, table, writer, auth, store)
        app[OBSERVER].attach(view=control_plane_view(store, runtime))
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=15,
                               **server_settings(build_limits(settings)))
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True,
                           backlog=2048)
        await site.start()  # listening before any replica starts: a busy port starts nothing
        try:
            await runtime.start(reconciler.wake)
        except RuntimeProblem as exc:  # no cluster, credentials, RBAC: nothing can run
            print(f"mlgate: cannot start the {settings.runtime} runtime: {exc}",
                  file=sys.stderr, flush=True)
            return 1
        reconciling = asyncio.create_task(reconciler.run(), name="reconciler")
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}"
        print(f"mlgate ready on {url}", flush=True)
        if on_ready is not None:
            on_ready(url)
        await stop.wait()
        log.info("shutting down")
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", settings.host, settings.port, exc)
        code = 1
    finally:
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
