"""The gateway application: a declared filter chain over the proxy handler.

The chain is frozen when the app is built. Outermost first:

1. ``error_middleware``      every failure answers JSON
2. ``request_id_middleware`` keep or create the Request-ID, echo it back
3. the route handler         ``/model/<id>/...``: pick a replica, forward, answer, log

Other packages (feedback, the management API) add their routes to the same
application and so run behind the same chain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiohttp import web

from storage import Exchange

from .errors import error_middleware, json_response
from .proxy import make_proxy_handler
from .request_id import request_id_middleware
from .routing import RouteTable
from .upstream import Timeouts, UpstreamPool

MODEL_ROUTE = r"/model/{deployment:[a-z][a-z0-9-]{0,62}}{tail:(/.*)?}"


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    timeouts: Timeouts = field(default_factory=Timeouts)
    max_body_bytes: int = 8 << 20
    upstream_connections: int = 1000

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1024:
            raise ValueError("gateway max_body_bytes must be at least 1024")
        if self.upstream_connections < 1:
            raise ValueError("gateway upstream_connections must be >= 1")


TABLE = web.AppKey("mlgate_route_table", RouteTable)
POOL = web.AppKey("mlgate_upstream_pool", UpstreamPool)


def build_filter_chain() -> list[Callable]:
    return [error_middleware, request_id_middleware]


def create_app(config: GatewayConfig, table: RouteTable,
               sink: Callable[[Exchange], object]) -> web.Application:
    app = web.Application(middlewares=build_filter_chain(), client_max_size=config.max_body_bytes)
    pool = UpstreamPool(config.timeouts, limit=config.upstream_connections)
    app[TABLE] = table
    app[POOL] = pool

    async def pool_ctx(_app: web.Application) -> AsyncIterator[None]:
        await pool.start()
        yield
        await pool.close()

    app.cleanup_ctx.append(pool_ctx)
    proxy = make_proxy_handler(table, pool, sink)
    app.router.add_route("*", MODEL_ROUTE, proxy, name="model")
    app.router.add_get("/health", _health, name="health")
    return app


async def _health(_request: web.Request) -> web.Response:
    return json_response(200, {"status": "ok"})
