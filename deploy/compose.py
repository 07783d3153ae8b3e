"""The composition root: the one place where :class:`~deploy.config.Settings` become objects.

``mlgate up``, its gateway workers, the sidecar and the CLI all build what they run
here, so a key of ``mlgate.yaml`` means the same thing in every process that reads it.
Nothing here starts anything; the shells in :mod:`deploy.serve` do.
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import EllipsisType

from aiohttp import web

import feedback
from deploy.api import BatchConfig, RecordSource, add_management_api
from deploy.batch.locations import Endpoints
from deploy.batch.metrics import JobMetrics
from deploy.batch.scheduling import JobRuntime
from deploy.config import Settings
from deploy.control.quality import deployment_infos
from deploy.control.reconciler import Reconciler
from deploy.control.revocations import RevocationStore
from deploy.control.rollouts import RolloutDriver
from deploy.control.runtime import Runtime
from deploy.control.store import Store
from deploy.keys import build_auth_config
from deploy.local.jobs import JobSupervisor
from deploy.local.runtime import LocalRuntime
from gateway import (
    OBSERVER,
    Admission,
    AuthConfig,
    Buckets,
    CertificateReloader,
    GatewayConfig,
    InvalidTokenLimit,
    Limits,
    LocalBuckets,
    OutlierPolicy,
    OverloadConfig,
    Replica,
    Revocations,
    RouteTable,
    SharedBuckets,
    Timeouts,
    TlsFiles,
    add_data_plane_route,
    add_openapi_route,
    answer_json,
    configure_logging,
    create_app,
    create_sidecar_app,
    parse_rate,
    set_error_format,
)
from storage import (
    DEFAULT_REDACTED_HEADERS,
    FEEDBACK,
    RESPONSE_BODY,
    Backend,
    RecordWriter,
    Tap,
    WriterConfig,
    make_backend,
)

__all__ = [
    "build_admission",
    "build_app",
    "build_auth_config",
    "build_backend",
    "build_batch_config",
    "build_buckets",
    "build_gateway_config",
    "build_job_supervisor",
    "build_joiner",
    "build_limits",
    "build_reconciler",
    "build_rollouts",
    "build_runtime",
    "build_sidecar_app",
    "build_tls",
    "build_writer",
    "configure_logging_from",
]


def configure_logging_from(settings: Settings) -> None:
    """Log level and format (``log_level``, ``logging.format``) for this process."""
    configure_logging(settings.log_level, settings.logging.format)


def build_backend(settings: Settings) -> Backend:
    """The bucket records go to: ``storage.kind`` local (``<data_dir>/storage``), s3 or gcs."""
    s = settings.storage
    return make_backend(s.kind, root=str(settings.data_path / "storage"), bucket=s.bucket,
                        endpoint_url=s.endpoint_url, region=s.region, timeout=s.timeout)


def build_writer(settings: Settings, spool_dir: Path | None = None,
                 tap: Tap | None = None) -> RecordWriter:
    """The spooling writer: segments under ``<data_dir>/spool`` (or ``spool_dir``), uploaded
    to the backend. With ``workers: N`` each process gets 1/N of ``spool.max_bytes``.
    ``tap``: the live join's, which sees predictions and feedback as they are spooled."""
    s = settings.storage
    redacted = DEFAULT_REDACTED_HEADERS | {h.lower() for h in s.redact_headers}
    return RecordWriter(build_backend(settings), spool_dir or settings.data_path / "spool",
                        tap=tap, tap_kinds=(RESPONSE_BODY, FEEDBACK), config=WriterConfig(
        prefix=s.prefix, flush_records=s.flush_records, flush_bytes=s.flush_bytes,
        flush_interval=s.flush_interval, max_pending_records=s.max_pending_records,
        spool_max_bytes=max(1, s.spool.max_bytes // settings.workers),
        feedback_reserve=s.spool.feedback_reserve,
        upload_concurrency=s.spool.upload_concurrency, retry_cap=s.spool.retry_max_delay,
        shutdown_timeout=s.spool.shutdown_timeout, redacted_headers=frozenset(redacted)))


def build_joiner(settings: Settings, store: Store) -> feedback.Joiner | None:
    """The live join of feedback to predictions (``quality:``), reading the deployments'
    ``spec.quality`` from ``store``; None when ``quality.enabled`` is false."""
    q = settings.quality
    if not q.enabled:
        return None
    limits = feedback.JoinLimits(
        max_pending=q.max_pending, max_waiting=q.max_waiting, feedback_wait=int(q.feedback_wait),
        grace=int(5 + 3 * q.poll_interval + 2 * settings.storage.flush_interval),
        horizon=int(q.horizon), latency_samples=q.latency_samples)
    return feedback.Joiner(build_backend(settings), settings.storage.prefix,
                           lambda: deployment_infos(store.list_deployments()),
                           feedback.JoinerConfig(limits, q.poll_interval, q.rescan_interval))


def build_limits(settings: Settings) -> Limits:
    g = settings.gateway
    return Limits(max_headers=g.max_headers, max_header_bytes=g.max_header_bytes,
                  idle_timeout=g.idle_timeout, body_timeout=g.body_timeout,
                  max_json_depth=g.max_json_depth)


def build_gateway_config(settings: Settings,
                         auth: AuthConfig | EllipsisType | None = ...) -> GatewayConfig:
    """Every ``gateway:``, ``logging:``, ``rate_limits:`` and ``overload:`` setting the data
    plane honours, for the edge, its workers and the sidecar alike; ``auth`` defaults to
    what ``settings.auth`` says."""
    g, o, a = settings.gateway, settings.overload, settings.auth
    invalid_rate = str(a.invalid_token_rate).strip()
    return GatewayConfig(timeouts=Timeouts(connect=g.connect_timeout, read=g.read_timeout),
                         max_body_bytes=g.max_body_bytes, limits=build_limits(settings),
                         auth=build_auth_config(settings) if auth is ... else auth,
                         outlier=OutlierPolicy(g.eject_after_failures, g.ejection_time,
                                               g.max_ejection_time),
                         mirror_max_in_flight=g.mirror_max_in_flight,
                         access_log=settings.logging.access_log,
                         rate_limits=settings.rate_limits.rules,
                         invalid_tokens=InvalidTokenLimit(
                             0.0 if invalid_rate in ("0", "0.0") else parse_rate(invalid_rate),
                             a.invalid_token_burst),
                         overload=OverloadConfig(o.max_memory_mb, o.max_loop_lag_ms, o.interval,
                                                 o.recover_after),
                         processes=settings.workers)


def build_admission(settings: Settings) -> Admission:
    """Every deployment's bounds (``admission:``), before its annotations override them."""
    a = settings.admission
    return Admission(a.max_in_flight_per_replica, a.max_waiting, a.timeout, a.max_timeout)


def rate_table_path(settings: Settings) -> Path:
    return settings.data_path / "ratelimit.table"


def build_buckets(settings: Settings, primary: bool) -> Buckets:
    """Where rate limits count: this process's memory (one process), or with ``workers: N``
    a table every process maps (:mod:`gateway.buckets`), created by the primary."""
    if settings.workers <= 1:
        return LocalBuckets()
    path = rate_table_path(settings)
    if primary:
        return SharedBuckets.create(path, settings.workers)
    return SharedBuckets.open(path, settings.workers)


def build_tls(settings: Settings) -> CertificateReloader | None:
    """The port's TLS context (``tls:``), reloaded when the files change; None: plain HTTP.
    ``TlsConfigError`` when the pair does not load."""
    t = settings.tls
    if not t.enabled:
        return None
    assert t.cert_file is not None and t.key_file is not None
    return CertificateReloader(TlsFiles(t.cert_file, t.key_file, t.reload_interval))


def build_app(settings: Settings, table: RouteTable, writer: RecordWriter,
              auth: AuthConfig | EllipsisType | None = ...,
              store: Store | None = None,
              forward_to: Replica | None = None,
              joiner: feedback.Joiner | None = None,
              rollouts: RolloutDriver | None = None,
              buckets: Buckets | None = None,
              revocations: Revocations | None = None,
              revocation_store: RevocationStore | None = None) -> web.Application:
    """The edge's app: gateway, feedback, the OpenAPI document, and (with ``store``) the
    management API, with the live quality figures of ``joiner``, the canary rollouts of
    ``rollouts`` and the token revocations of ``revocation_store``. ``forward_to``: a
    worker's primary, which answers the rest. ``buckets``: the rate limits' counts
    (:func:`build_buckets`); ``revocations``: the revoked tokens this process checks (kept
    current by whoever owns the list)."""
    app = create_app(build_gateway_config(settings, auth), table, writer.offer, forward_to,
                     buckets=buckets, revocations=revocations)
    app[OBSERVER].attach(writer_stats=writer.stats)
    feedback.add_routes(app, writer, functools.partial(add_data_plane_route, app), answer_json)
    set_error_format(app, feedback.SEED_PATH, feedback.seed_error_body)
    set_error_format(app, feedback.SDK_PATH, feedback.sdk_error_body)
    add_openapi_route(app, table, feedback.openapi_paths(), feedback.openapi_schemas())
    if store is not None:
        add_management_api(app, store, settings.api.edge_url, build_batch_config(settings),
                           RecordSource(build_backend(settings), settings.storage.prefix),
                           joiner, rollouts, revocation_store)
        if joiner is not None:
            app[OBSERVER].attach(collector=feedback.QualityCollector(joiner))
        if rollouts is not None:
            app[OBSERVER].attach(collector=rollouts.metrics)
    return app


def build_batch_config(settings: Settings) -> BatchConfig:
    """What the jobs API checks: buckets' endpoints, the local directories jobs may use."""
    roots = settings.batch.local_roots or (str(Path.cwd()),)
    return BatchConfig(Endpoints.from_settings(settings),
                       tuple(Path(r).resolve() for r in roots),
                       cluster=settings.runtime == "kubernetes")


def build_job_supervisor(settings: Settings, store: Store, host: str, port: int,
                         config_file: str | None = None) -> JobRuntime:
    """What runs inference jobs: runner processes on this machine calling this gateway, or
    (``runtime: kubernetes``) Indexed Jobs in the cluster."""
    if settings.runtime == "kubernetes":
        from deploy.k8s.jobs import KubernetesJobs  # lightkube: the [k8s] extra

        return KubernetesJobs(store, settings, JobMetrics())
    loopback = host in ("", "0.0.0.0", "::")
    address = "127.0.0.1" if loopback else (f"[{host}]" if ":" in host else host)
    return JobSupervisor(store, settings, f"http://{address}:{port}", JobMetrics(),
                         config_file)


def build_sidecar_app(settings: Settings, table: RouteTable, deployment_id: str,
                      writer: RecordWriter | None) -> web.Application:
    """The sidecar's app: the same gateway settings as the edge; no tokens are checked (the
    edge or the mesh in front does), records only with a ``writer``."""
    sink = writer.offer if writer is not None else _discard
    app = create_sidecar_app(build_gateway_config(settings, None), table, deployment_id, sink)
    if writer is not None:
        app[OBSERVER].attach(writer_stats=writer.stats)
    return app


def _discard(_exchange: object) -> None:
    return None


def build_runtime(settings: Settings) -> Runtime:
    """The runtime that runs replicas: ``runtime: local`` or ``runtime: kubernetes``."""
    if settings.runtime == "kubernetes":
        from deploy.k8s.runtime import KubernetesRuntime  # lightkube: the [k8s] extra

        return KubernetesRuntime(settings.kubernetes)
    return LocalRuntime(settings)


def build_rollouts(store: Store, joiner: feedback.Joiner | None) -> RolloutDriver:
    """The canary rollouts' driver (``spec.analysis`` of ModelRoutes), judging what
    ``joiner`` joined; it says why it cannot judge without the analysis extra or the join."""
    return RolloutDriver(store, joiner)


def build_reconciler(settings: Settings, store: Store, runtime: Runtime,
                     table: RouteTable, rollouts: RolloutDriver | None = None) -> Reconciler:
    """The control loop; ``rollouts``: the canary rollouts it drives on each pass."""
    a = settings.autoscaler
    return Reconciler(store, runtime, table, a.policy(), a.interval, rollouts=rollouts,
                      admission=build_admission(settings))
