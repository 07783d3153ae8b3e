"""The gateway application: a declared filter chain over the proxy handler.

The chain is frozen when the app is built, and both servers behind the port run it
(:mod:`gateway.filters` is the contract, :mod:`gateway.server` the servers): the
data plane's paths are answered by the fast server, everything else by aiohttp,
through this one list. Outermost first:

-. ``forward``               a worker of ``--workers N`` only: what is not the data plane
                             goes to the primary process as it came (:mod:`gateway.forward`)
0. ``observe``               metrics, status windows, access log (times everything below)
1. ``error_middleware``      every failure answers JSON
2. ``request_id_middleware`` keep or create the Request-ID, echo it back
3. ``limits``                refuse escaping paths and oversized declared bodies
3a. ``overload``             the process is overloaded: the data plane answers 503 at once
4. ``authn``                 bearer JWT -> principal (401; revoked tokens too; 429 for an
                             address sending invalid tokens), unless auth is off
5. ``body``                  read the body within a deadline, bound JSON depth
6. ``route_match``           ``/custom/...``: the ModelRoute by longest urlPrefix (its id for authz)
7. ``authz``                 policy on (roles, action, resource) (403), unless auth is off
8. the route handlers        ``/model/<id>/...``: rate limits (429), admission (a replica
                             with room, or wait within the deadline: 503/504), forward,
                             answer, log; ``/custom/...``: the route's rate limits, pick a
                             target of the route, then the same, and copy to the route's
                             mirror

Other packages (feedback, the management API) add their routes to the same
application and so run behind the same chain; a route of the data plane is also
added to the app's :class:`~gateway.dataplane.DataPlane` (:func:`add_data_plane_route`).
A sidecar (:func:`create_sidecar_app`) is the same chain over one deployment whose
paths arrive bare.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiohttp import web

from storage import Exchange

from . import catalog, status
from .auth import (
    AuthConfig,
    Authenticator,
    InvalidTokenLimit,
    InvalidTokens,
    JwksClient,
    Revocations,
    StaticKeys,
    make_authn_filter,
    make_authz_filter,
)
from .buckets import Buckets, LocalBuckets
from .dataplane import ANY, DataPlane, is_model_path
from .errors import ERRORS, ErrorMapping, make_error_filter
from .filters import Answer, Filter, Handler, answer_adapter, answer_json
from .forward import make_forward_filter
from .limits import Limits, make_body_filter, make_limits_filter
from .mirror import Mirror
from .observe import Observer, add_metrics_route, make_observe_filter
from .outlier import OutlierPolicy
from .overload import OverloadConfig, OverloadMonitor, make_overload_filter
from .proxy import Protection, make_proxy_handler
from .ratelimit import RateLimiter, RateRule
from .request_id import request_id_middleware
from .route_proxy import CUSTOM_ROUTE, make_route_handler, make_route_match_filter
from .routing import Replica, RouteTable
from .server import DATA_PLANE
from .upstream import Timeouts, UpstreamPool

MODEL_ROUTE = r"/model/{deployment:[a-z][a-z0-9-]{0,62}}{tail:(/.*)?}"


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_body_bytes: int = 8 << 20
    upstream_connections: int = 1000
    limits: Limits = field(default_factory=Limits)
    auth: AuthConfig | None = None
    """None: no authentication or authorization (``mlgate up`` always passes one unless
    the operator wrote ``auth: {enabled: false}``)."""
    access_log: bool = True
    """One line per request on the ``mlgate.access`` logger (info level)."""
    outlier: OutlierPolicy = field(default_factory=OutlierPolicy)
    mirror_max_in_flight: int = 100
    """Copies to mirrors in flight at once; beyond, copies are dropped and counted."""
    mirror_drain_timeout: float = 5.0
    """Seconds copies in flight may still finish at shutdown."""
    rate_limits: tuple[RateRule, ...] = ()
    """Rate limit rules by route and deployment (besides each deployment's own)."""
    invalid_tokens: InvalidTokenLimit = field(default_factory=lambda: InvalidTokenLimit(0))
    """How many invalid tokens one client address may send (:mod:`gateway.auth.abuse`);
    no limit by default here (``mlgate up`` sets one: ``auth.invalid_token_rate``)."""
    overload: OverloadConfig = field(default_factory=OverloadConfig)
    """Memory and event-loop lag marks of this process (:mod:`gateway.overload`)."""
    processes: int = 1
    """Gateway processes serving the port (``--workers``): each takes its share of the
    per-replica and waiting bounds."""

    def __post_init__(self) -> None:
        if self.processes < 1:
            raise ValueError("gateway processes must be >= 1")
        if self.max_body_bytes < 1024:
            raise ValueError("gateway max_body_bytes must be at least 1024")
        if self.upstream_connections < 1:
            raise ValueError("gateway upstream_connections must be >= 1")
        if self.mirror_max_in_flight < 0:
            raise ValueError("gateway mirror_max_in_flight must be >= 0")


TABLE = web.AppKey("mlgate_route_table", RouteTable)
REVOCATIONS = web.AppKey("mlgate_revocations", Revocations)
OVERLOAD = web.AppKey("mlgate_overload", OverloadMonitor)
POOL = web.AppKey("mlgate_upstream_pool", UpstreamPool)
MIRROR = web.AppKey("mlgate_mirror", Mirror)
OBSERVER = web.AppKey("mlgate_observer", Observer)


AUTHENTICATOR = web.AppKey("mlgate_authenticator", Authenticator)
PROTECTION = web.AppKey("mlgate_protection", Protection)


def build_filter_chain(config: GatewayConfig, table: RouteTable,
                       authenticator: Authenticator | None = None,
                       observer: Observer | None = None,
                       forward: Callable | None = None,
                       errors: ErrorMapping | None = None,
                       overload: OverloadMonitor | None = None,
                       revocations: Revocations | None = None,
                       invalid_tokens: InvalidTokens | None = None) -> list[Filter]:
    """The one chain, outermost first (both servers run it; :mod:`gateway.filters`). The
    body is read (with its deadline) only once the caller is authenticated, and before
    authz, which may need a management write's ``id``; the ModelRoute is matched before
    authz, whose rules may name its id. An overloaded process sheds before it checks any
    token."""
    chain: list[Filter] = [forward] if forward is not None else []
    if observer is not None:
        chain.append(make_observe_filter(observer))
    chain += [make_error_filter(errors if errors is not None else ErrorMapping()),
              request_id_middleware, make_limits_filter(config.max_body_bytes)]
    if overload is not None and overload.config.enabled:
        chain.append(make_overload_filter(overload))
    if config.auth is not None and authenticator is not None:
        chain += [make_authn_filter(authenticator, revocations, invalid_tokens),
                  make_body_filter(config.limits),
                  make_route_match_filter(table), make_authz_filter(config.auth.policy, table)]
    else:
        chain += [make_body_filter(config.limits), make_route_match_filter(table)]
    return chain


def build_authenticator(auth: AuthConfig) -> tuple[Authenticator, JwksClient | None]:
    jwks = JwksClient(auth.jwks) if auth.jwks is not None else None
    keys = jwks if jwks is not None else StaticKeys(auth.static_keys)
    return Authenticator(keys, auth.rules, auth.roles_claim, cache_size=auth.token_cache_size,
                         max_token_bytes=auth.max_token_bytes), jwks


def create_app(config: GatewayConfig, table: RouteTable,
               sink: Callable[[Exchange], object],
               forward_to: Replica | None = None, *,
               buckets: Buckets | None = None,
               revocations: Revocations | None = None) -> web.Application:
    """The gateway. ``forward_to``: this process is a worker of ``--workers N`` whose
    primary (at that address) answers everything but the data plane. ``buckets``: where
    rate limits keep their counts (default: this process; :mod:`gateway.buckets`);
    ``revocations``: the revoked tokens, which the control plane keeps current
    (``app[REVOCATIONS]``)."""
    authenticator, jwks = build_authenticator(config.auth) if config.auth else (None, None)
    observer = Observer(table, access_log=config.access_log)
    forward_pool = UpstreamPool(config.timeouts) if forward_to is not None else None
    forward = (make_forward_filter(forward_pool, forward_to)
               if forward_pool is not None and forward_to is not None else None)
    errors = ErrorMapping()
    buckets = buckets if buckets is not None else LocalBuckets()
    revocations = revocations if revocations is not None else Revocations()
    overload = OverloadMonitor(config.overload)
    invalid = InvalidTokens(config.invalid_tokens, buckets)
    chain = build_filter_chain(config, table, authenticator, observer, forward, errors,
                               overload, revocations, invalid)
    app = web.Application(middlewares=[answer_adapter, *chain],
                          client_max_size=config.max_body_bytes)
    app[ERRORS] = errors
    plane = app[DATA_PLANE] = DataPlane(chain, config.max_body_bytes)
    if forward_pool is not None:
        app.cleanup_ctx.append(_pool_ctx(forward_pool))
    app[OBSERVER] = observer
    app.cleanup_ctx.append(observer.ctx)
    app[REVOCATIONS] = revocations
    app[OVERLOAD] = overload
    app.cleanup_ctx.append(overload.ctx)
    observer.attach(overload=overload)
    protection = Protection(RateLimiter(config.rate_limits, buckets), config.processes)
    app[PROTECTION] = protection
    if authenticator is not None:
        app[AUTHENTICATOR] = authenticator
    if jwks is not None:
        async def jwks_ctx(_app: web.Application) -> AsyncIterator[None]:
            await jwks.start()
            yield
            await jwks.close()

        app.cleanup_ctx.append(jwks_ctx)
    pool = UpstreamPool(config.timeouts, limit=config.upstream_connections)
    app[TABLE] = table
    app[POOL] = pool
    app.cleanup_ctx.append(_pool_ctx(pool))
    mirror = Mirror(table, pool, sink, config.mirror_max_in_flight, config.outlier, protection,
                    lambda: overload.shed_mirror)
    app[MIRROR] = mirror
    observer.attach(mirror_stats=mirror.stats)

    async def mirror_ctx(_app: web.Application) -> AsyncIterator[None]:
        yield  # torn down before the pool: copies in flight may finish first
        await mirror.close(config.mirror_drain_timeout)

    app.cleanup_ctx.append(mirror_ctx)
    proxy = make_proxy_handler(table, pool, sink, config.outlier, protection=protection)
    app.router.add_route("*", MODEL_ROUTE, proxy, name="model")
    plane.add([ANY], "/model/", proxy, prefix=True, accept=is_model_path)
    custom = make_route_handler(table, pool, sink, mirror, config.outlier,
                                protection=protection)
    app.router.add_route("*", CUSTOM_ROUTE, custom, name="custom")
    plane.add([ANY], "/custom", custom)
    plane.add([ANY], "/custom/", custom, prefix=True)
    app.router.add_get("/health", _health, name="health")
    plane.add(["GET", "HEAD"], "/health", _health)
    add_metrics_route(app, observer)
    status.add_routes(app, observer)
    catalog.add_routes(app, table, pool)
    return app


def create_sidecar_app(config: GatewayConfig, table: RouteTable, deployment_id: str,
                       sink: Callable[[Exchange], object]) -> web.Application:
    """The gateway inside one model's pod: the same chain, and every path (as a mesh or the
    edge sends it, ``/api/model/invoke``) to deployment ``deployment_id``, unchanged."""
    app = create_app(config, table, sink)
    proxy = make_proxy_handler(table, app[POOL], sink, config.outlier,
                               deployment_id=deployment_id, protection=app[PROTECTION])
    app.router.add_route("*", "/{tail:.*}", proxy, name="sidecar")
    app[DATA_PLANE].set_fallback(proxy, "sidecar")
    return app


def add_data_plane_route(app: web.Application, method: str, path: str,
                         handler: Handler, name: str | None = None) -> None:
    """Serve ``method path`` with ``handler`` on the fast server and on aiohttp alike (the
    handler gets the filter contract's request and returns an answer)."""
    app.router.add_route(method, path, handler, name=name)
    app[DATA_PLANE].add([method], path, handler)


def _pool_ctx(pool: UpstreamPool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def pool_ctx(_app: web.Application) -> AsyncIterator[None]:
        await pool.start()
        yield
        await pool.close()

    return pool_ctx


async def _health(_request: object) -> Answer:
    return answer_json(200, {"status": "ok"})
