"""``/custom/...``: the gateway serves ModelRoutes — A/B splits, canaries, sticky users, shadows.

Two steps of the filter chain:

- :func:`make_route_match_filter`, just before authz: resolves the path to the route
  with the longest ``urlPrefix`` (:meth:`RouteTable.match`), sets ``ROUTE_ID_KEY`` so
  policy rules can name the route id, and keeps the route for the handler (a route
  replaced meanwhile does not change a request that already matched);
- :func:`make_route_handler`, terminal: the target (:func:`gateway.traffic.choose_target`),
  the request forwarded with the rest of the path as for ``/model/<id>/...``, another
  target when the chosen one could not be connected to (never once the request reached a
  model; an override is never moved), the answer with ``x-mlgate-route`` and
  ``x-mlgate-target``, the exchange logged with ``route``, ``target`` and ``assignment``,
  and a copy to the mirror (:mod:`gateway.mirror`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from aiohttp import web

from .auth.filters import PRINCIPAL_KEY, ROUTE_ID_KEY
from .errors import GatewayError, NotFound, ServiceUnavailable, UpstreamConnectError
from .filters import Answer, Request, hooks_filter
from .headers import response_headers, upstream_headers, upstream_path
from .mirror import Mirror, MirrorCopy
from .outlier import OutlierPolicy
from .proxy import (
    DEFAULT_OUTLIER,
    NO_PROTECTION,
    Protection,
    RecordSink,
    check_rate_limits,
    exchange_of,
    failed_exchange,
    forward,
    rate_limit_headers,
)
from .request_id import REQUEST_ID_KEY
from .routing import Deployment, RouteTable
from .sticky import sticky_value
from .traffic import (
    FAILOVER,
    OVERRIDE,
    OVERRIDE_HEADER,
    ROUTE_HEADER,
    TARGET_HEADER,
    Choice,
    TrafficRoute,
    choose_target,
    failover_target,
    should_mirror,
)
from .upstream import UpstreamPool, UpstreamResponse

CUSTOM_ROUTE = r"/custom{tail:(/.*)?}"
CUSTOM_PREFIX = "/custom/"
MATCHED_ROUTE_KEY = web.RequestKey("mlgate_matched_route", TrafficRoute)


def make_route_match_filter(table: RouteTable) -> Callable:
    def route_match(request: web.Request) -> None:
        if request.raw_path.startswith(CUSTOM_PREFIX):
            route = table.match(request.raw_path)
            if route is not None:
                request[MATCHED_ROUTE_KEY] = route
                request[ROUTE_ID_KEY] = route.id

    return hooks_filter(route_match, name="route_match")


def _choose(request: web.Request, route: TrafficRoute, usable: list[str],
            draw: Callable[[], float]) -> Choice:
    principal = request.get(PRINCIPAL_KEY)
    key = None
    if route.sticky is not None:
        key = sticky_value(route.sticky, request.headers, request.cookies,
                           principal.claims if principal is not None else None)
    return choose_target(
        route, override=request.headers.get(OVERRIDE_HEADER) or None,
        may_override=principal is None or not principal.roles.isdisjoint(route.override_roles),
        key=key, draw=draw(), usable=usable)


def _extra(route: TrafficRoute, dep: Deployment, choice: Choice) -> dict[str, object]:
    return {"route": route.id, "target": dep.id, "assignment": choice.assignment}


def make_route_handler(table: RouteTable, pool: UpstreamPool, sink: RecordSink, mirror: Mirror,
                       outlier: OutlierPolicy = DEFAULT_OUTLIER,
                       draw: Callable[[], float] = random.random,
                       protection: Protection = NO_PROTECTION,
                       ) -> Callable[[Request], object]:
    async def send(route: TrafficRoute, choice: Choice, usable: list[str], method: str,
                   path_qs: str, out: dict[str, str], body: bytes, request: Request,
                   ) -> tuple[Deployment, Choice, UpstreamResponse, int]:
        tried: list[str] = []
        while True:
            dep = table.get(choice.target)
            try:
                if dep is None:
                    raise ServiceUnavailable(f"model deployment {choice.target!r} of model "
                                             f"route {route.id!r} does not exist")
                up, upstream_ms = await forward(pool, dep, method, path_qs, out, body, outlier,
                                                request, protection)
                return dep, choice, up, upstream_ms
            except (UpstreamConnectError, ServiceUnavailable) as exc:
                other = None
                if choice.assignment != OVERRIDE:
                    tried.append(choice.target)
                    other = failover_target(route, tried, usable, draw())
                if other is None:
                    _log_failure(request, dep, route, choice, path_qs, body, exc)
                    raise
                choice = Choice(other, FAILOVER)
            except GatewayError as exc:
                _log_failure(request, dep, route, choice, path_qs, body, exc)
                raise

    def _log_failure(request: Request, dep: Deployment | None, route: TrafficRoute,
                     choice: Choice, path_qs: str, body: bytes, exc: GatewayError) -> None:
        if dep is not None and exc.record:
            sink(failed_exchange(request, dep, path_qs, body, exc, _extra(route, dep, choice),
                                 route.id))

    async def route_proxy(request: Request) -> Answer:
        route = request.get(MATCHED_ROUTE_KEY) or table.match(request.raw_path)
        if route is None:
            raise NotFound(f"no model route for {request.path}")
        path_qs = upstream_path(request.raw_path, route.url_prefix)
        check_rate_limits(request, protection, "route", route.id)
        body = await request.read()
        request_id = request[REQUEST_ID_KEY]
        out = upstream_headers(request.headers, request_id, request.remote, request.scheme)
        out.pop(OVERRIDE_HEADER, None)
        now = time.monotonic()
        usable = [t.deployment_id for t in route.targets
                  if (d := table.get(t.deployment_id)) is not None and d.usable(now)]
        first = _choose(request, route, usable, draw)
        dep, choice, up, upstream_ms = await send(route, first, usable, request.method,
                                                  path_qs, out, body, request)
        headers = response_headers(up.headers, request_id, dep.model_name, dep.model_version,
                                   upstream_ms)
        headers[ROUTE_HEADER] = route.id
        headers[TARGET_HEADER] = dep.id
        rate_limit_headers(request, headers)
        sink(exchange_of(request, dep, path_qs, body, up, headers, _extra(route, dep, choice),
                         route.id))
        if route.mirror and route.mirror != dep.id and should_mirror(route.mirror_percent,
                                                                     draw()):
            mirror.copy(MirrorCopy(
                route.id, route.mirror, request_id, request.method, request.raw_path, path_qs,
                request.host, request.scheme, request.headers.items(), out, body))
        return Answer(up.status, headers, up.body)

    return route_proxy
