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

from aiohttp import web

from deploy.batch.scheduling import JobRuntime
from deploy.compose import (
    build_app,
    build_auth_config,
    build_buckets,
    build_job_supervisor,
    build_joiner,
    build_limits,
    build_reconciler,
    build_rollouts,
    build_runtime,
    build_tls,
    build_writer,
)
from deploy.config import ConfigError, Settings
from deploy.control.deployments import ModelDeployment
from deploy.control.monitoring import control_plane_view
from deploy.control.revocations import RevocationStore
from deploy.control.runtime import RuntimeProblem
from deploy.control.store import Store
from deploy.serve.workers import (
    WorkerPool,
    WorkerStartError,
    drain_orphan_spools,
    orphan_spool_dirs,
    worker_command,
)
from gateway import (
    MIRROR,
    OBSERVER,
    GatewayRunner,
    Observer,
    RevocationList,
    Revocations,
    RouteTable,
    TlsConfigError,
    quiet_protocol_errors,
    server_settings,
)
from storage import StorageError

log = logging.getLogger("mlgate")


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
        tls = build_tls(settings)
    except (ConfigError, TlsConfigError) as exc:
        print(f"mlgate: {exc}", file=sys.stderr, flush=True)
        return 2
    quiet_protocol_errors()
    if auth is None:
        log.warning("authentication is OFF (auth.enabled: false): anyone who can reach "
                    "%s:%s may invoke, manage and read everything", settings.host, settings.port)
    store = Store(settings.data_path / "state.db")
    revocation_store = RevocationStore(settings.data_path / "state.db")
    revocations = Revocations(revocation_store.current())
    apply_manifests(store, deployments)
    table = RouteTable()
    joiner = build_joiner(settings, store)
    writer = build_writer(settings, tap=joiner.tap if joiner is not None else None)
    try:
        await writer.start()
    except StorageError as exc:
        print(f"mlgate: {exc}", file=sys.stderr, flush=True)
        store.close()
        return 1
    if joiner is not None:
        await joiner.start()
    runtime = build_runtime(settings)
    rollouts = build_rollouts(store, joiner)
    reconciler = build_reconciler(settings, store, runtime, table, rollouts)
    runner: web.AppRunner | None = None
    app: web.Application | None = None
    reconciling: asyncio.Task[None] | None = None
    jobs: JobRuntime | None = None
    workers: WorkerPool | None = None
    orphans: asyncio.Task[None] | None = None
    buckets = build_buckets(settings, primary=True)
    code = 0

    def revoked() -> None:  # the API changed the list: this process and every worker, now
        current = revocation_store.current()
        revocations.replace(current)
        if workers is not None:
            workers.publish_revocations(current)

    revocation_store.subscribe(revoked)
    try:
        app = build_app(settings, table, writer, auth, store, joiner=joiner, rollouts=rollouts,
                        buckets=buckets, revocations=revocations,
                        revocation_store=revocation_store)
        app[OBSERVER].attach(view=control_plane_view(store, runtime))
        if tls is not None:
            app.cleanup_ctx.append(tls.ctx)
        runner = GatewayRunner(app, handle_signals=False, access_log=None, shutdown_timeout=15,
                               **server_settings(build_limits(settings)))
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True,
                           reuse_port=settings.workers > 1 or None, backlog=2048,
                           ssl_context=tls.context if tls is not None else None)
        await site.start()  # listening before any replica starts: a busy port starts nothing
        host, port = runner.addresses[0][:2]
        private = await private_listener(runner) if tls is not None or settings.workers > 1 \
            else None
        try:
            await runtime.start(reconciler.wake)
        except RuntimeProblem as exc:  # no cluster, credentials, RBAC: nothing can run
            print(f"mlgate: cannot start the {settings.runtime} runtime: {exc}",
                  file=sys.stderr, flush=True)
            return 1
        reconciling = asyncio.create_task(reconciler.run(), name="reconciler")
        # runners call this gateway; with TLS on the port, over the private plain listener
        job_port = private if tls is not None and private is not None else port
        jobs = build_job_supervisor(settings, store, "127.0.0.1" if tls is not None else host,
                                    job_port, config_file)
        app[OBSERVER].metrics.registry.register(jobs.metrics)
        await jobs.start()  # jobs the last run left Running resume now
        if settings.workers > 1:
            assert private is not None
            workers, orphans = await start_workers(settings, private, table, reconciler.demand,
                                                   port, config_file, app[OBSERVER],
                                                   lambda: revocations.current)
        url = f"{'https' if tls is not None else 'http'}://{host}:{port}"
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
        if jobs is not None:
            await jobs.close()  # runners stop; their jobs resume at the next start
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
        if joiner is not None:
            await joiner.close()
            await joiner.backend.close()
        await writer.close()
        store.close()
        revocation_store.close()
        close = getattr(buckets, "close", None)
        if close is not None:
            close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("storage: %s", writer.stats.as_dict())
        if app is not None:
            log.info("mirror: %s", app[MIRROR].stats.as_dict())
    return code


async def private_listener(runner: web.AppRunner) -> int:
    """A plain listener on 127.0.0.1 (a free port) for this machine's own callers: what the
    workers forward, and job runners when the public port speaks TLS. Its port."""
    internal = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await internal.start()
    return runner.addresses[-1][1]


async def start_workers(settings: Settings, private: int, table: RouteTable,
                        demand: Callable[[str], None], port: int, config_file: str | None,
                        observer: Observer | None = None,
                        revocations: Callable[[], RevocationList] | None = None,
                        ) -> tuple[WorkerPool, asyncio.Task[None]]:
    """The gateway workers of ``workers: N`` (:mod:`deploy.serve.workers`) forwarding to the
    primary's ``private`` listener, and the upload of spools that workers of an earlier run
    with more of them left behind."""
    primary = f"127.0.0.1:{private}"
    orphans = asyncio.create_task(drain_orphan_spools(
        [build_writer(settings, d) for d in orphan_spool_dirs(settings.data_path,
                                                              settings.workers)]),
        name="mlgate-orphan-spools")
    pool = WorkerPool(settings.workers, table, worker_command(
        config_file, settings.host, port, str(settings.data_path), primary, settings.workers),
        demand, observer,
        revocations)
    try:
        await pool.start()
    except BaseException:
        await pool.stop()
        raise
    log.info("%d gateway worker processes serving %s:%d with this one", settings.workers - 1,
             settings.host, port)
    return pool, orphans
