"""The terminal filter: ``/model/<id>/...`` to a replica, answer, hand the exchange to logging.

Header handling is pure and lives in ``headers.py``; this module only orchestrates.
An answer the gateway gives itself once the deployment is known (503 no replica, 502
the replica failed, 504 it timed out) is logged too, with its JSON body, so the
records count every request a deployment was asked to serve and every 5xx among them.
Refusals that protect the gateway or the model before a replica is asked (shed, rate
limited, deadline passed while waiting: :mod:`gateway.admission`, :mod:`gateway.ratelimit`)
are counted in metrics instead, so shedding stays cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from storage import Exchange

from .admission import DeadlineExceeded, Shed, deadline_of, remaining, slot_limit, wait_limit
from .auth.filters import PRINCIPAL_KEY
from .errors import (
    GatewayError,
    NotFound,
    ServiceUnavailable,
    UpstreamConnectError,
    UpstreamError,
    default_error_body,
)
from .fast_request import interruptible
from .filters import Answer, Request
from .headers import (
    decoded_request_encoding,
    response_headers,
    upstream_headers,
    upstream_path,
)
from .observe import COLD_START, SERVED_BY, UPSTREAM_SECONDS
from .outlier import OutlierPolicy, is_failure_status, record
from .ratelimit import RateLimiter, headers_for
from .request_id import REQUEST_ID_KEY
from .routing import (
    Deployment,
    Replica,
    RouteTable,
    has_candidates,
    model_deployment_id,
    pick_replica,
)
from .upstream import UpstreamPool, UpstreamResponse

RecordSink = Callable[[Exchange], object]
DEFAULT_OUTLIER = OutlierPolicy()
DOCUMENT_HEADERS = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))


def local_document(dep: Deployment, method: str, path_qs: str) -> UpstreamResponse | None:
    """The deployment's own answer for ``GET``/``HEAD`` of a documented path, if any."""
    if method not in ("GET", "HEAD") or not dep.documents:
        return None
    body = dep.documents.get(path_qs.partition("?")[0])
    return UpstreamResponse(200, DOCUMENT_HEADERS, body) if body is not None else None


@dataclass(frozen=True, slots=True)
class Protection:
    """What protects the models on the request path besides each deployment's own bounds:
    the configured rate limits, and how many gateway processes share the bounds."""

    limiter: RateLimiter | None = None
    processes: int = 1


NO_PROTECTION = Protection()
DEADLINE_KEY = web.RequestKey("mlgate_deadline", object)
"""The request's deadline (monotonic seconds, or None), fixed the first time it is sent."""
RATE_VERDICTS_KEY = web.RequestKey("mlgate_rate_verdicts", list)
"""The rate limit checks of this request, for the ``RateLimit-*`` fields of its answer."""


async def send_to_deployment(pool: UpstreamPool, dep: Deployment, method: str, path_qs: str,
                             headers: dict[str, str], body: bytes,
                             outlier: OutlierPolicy = DEFAULT_OUTLIER,
                             deadline: float | None = None, processes: int = 1,
                             shadow: bool = False,
                             request: Request | None = None) -> UpstreamResponse:
    """Send to the least-loaded replica with room (:mod:`gateway.admission`); on a connect
    failure try the next one.

    Every outcome feeds the replica's outlier state (except a deadline the caller set);
    only a connect failure (the request never reached the model) is retried. When every
    replica is at its bound the request waits its turn within ``deadline``; a ``shadow``
    copy never waits; a ``request`` whose client goes away while it waits leaves the queue.
    """
    tried: list[Replica] = []
    last_error: UpstreamConnectError | None = None
    limit = slot_limit(dep.admission, processes)
    woke = False
    while True:
        behind = limit and dep.gate.queued and not woke and not tried
        replica = None if behind else pick_replica(dep.replicas, tried, limit=limit)
        if replica is None:
            if not has_candidates(dep.replicas, tried):
                if last_error is not None:
                    raise last_error
                raise ServiceUnavailable(f"model deployment {dep.id!r} has no ready replica")
            with interruptible(request):
                woke = await _wait_for_slot(dep, limit, deadline, processes, shadow)
            continue
        left = remaining(deadline)
        if left is not None and left <= 0:
            raise DeadlineExceeded(f"the request's deadline passed before model deployment "
                                   f"{dep.id!r} had a replica free", "deadline_waiting")
        replica.outstanding += 1
        try:
            response = await pool.send(replica, method, path_qs, headers, body, deadline)
        except UpstreamConnectError as exc:
            record(replica, False, time.monotonic(), outlier)
            tried.append(replica)
            last_error = exc
            continue
        except UpstreamError as exc:
            if exc.reason != "deadline_upstream":  # the caller's deadline is no replica's fault
                record(replica, False, time.monotonic(), outlier)
            raise
        finally:
            replica.outstanding -= 1
            dep.gate.release()
        record(replica, not is_failure_status(response.status), time.monotonic(), outlier)
        return response


async def _wait_for_slot(dep: Deployment, limit: int, deadline: float | None,
                         processes: int, shadow: bool) -> bool:
    """Every replica is at its bound: wait for a slot (True), or refuse at once."""
    if shadow:
        raise Shed(f"model deployment {dep.id!r} is at its bound of {limit} request(s) in "
                   "flight per replica: the mirror copy is dropped", "queue_full")
    waiting = dep.gate.waiting
    if waiting >= wait_limit(dep.admission, processes):
        dep.shed += 1
        raise Shed(f"model deployment {dep.id!r} is at capacity: {limit} request(s) in flight "
                   f"per replica and {waiting} waiting; retry later", "queue_full")
    if not await dep.gate.wait(deadline):
        raise DeadlineExceeded(f"the request's deadline passed while it waited for a replica "
                               f"of model deployment {dep.id!r}", "deadline_waiting")
    return True


async def hold_for_replica(dep: Deployment, deadline: float | None = None,
                           processes: int = 1, request: Request | None = None) -> None:
    """The cold start: wait for a first replica (within the deadline, with at most
    ``max_waiting`` others), or answer 503 with the reason (504 when the deadline passed)."""
    if dep.cold_start_timeout > 0:
        waiting = dep.gate.waiting
        if waiting >= wait_limit(dep.admission, processes):
            dep.shed += 1
            raise Shed(f"model deployment {dep.id!r} is starting and {waiting} request(s) "
                       "already wait for it; retry later", "cold_start_queue_full", retry_after=5)
        timeout, left = dep.cold_start_timeout, remaining(deadline)
        by_deadline = left is not None and left < timeout
        dep.gate.held += 1
        try:
            with interruptible(request):
                if await dep.wait_for_replicas(max(0.0, left) if by_deadline else timeout):
                    return
        finally:
            dep.gate.held -= 1
        if by_deadline and not dep.unavailable_reason:
            raise DeadlineExceeded(f"the request's deadline passed while model deployment "
                                   f"{dep.id!r} was starting", "deadline_cold_start")
    if dep.unavailable_reason:
        raise ServiceUnavailable(
            f"model deployment {dep.id!r} is unavailable: {dep.unavailable_reason}",
            retry_after=30)
    if dep.cold_start_timeout > 0:
        raise ServiceUnavailable(
            f"model deployment {dep.id!r} has no ready replica: none started within "
            f"{dep.cold_start_timeout:g}s", retry_after=5)
    raise ServiceUnavailable(f"model deployment {dep.id!r} has no ready replica")


def check_rate_limits(request: Request, protection: Protection, kind: str, target: str,
                      own: tuple[Any, ...] = ()) -> None:
    """Take from the request's buckets for ``kind`` ``target``; 429 when one is empty. The
    checks are kept on the request for its answer's ``RateLimit-*`` fields."""
    limiter = protection.limiter
    if limiter is None or not (limiter.rules or own):
        return
    principal = request.get(PRINCIPAL_KEY)
    verdicts = request.get(RATE_VERDICTS_KEY) or []
    request[RATE_VERDICTS_KEY] = limiter.check(
        kind, target, principal.claims if principal is not None else None, request.remote,
        own, verdicts)


def rate_limit_headers(request: Request, headers: CIMultiDict[str]) -> None:
    verdicts = request.get(RATE_VERDICTS_KEY)
    if verdicts:
        headers.update(headers_for(verdicts))


async def forward(pool: UpstreamPool, dep: Deployment, method: str, path_qs: str,
                  headers: dict[str, str], body: bytes,
                  outlier: OutlierPolicy = DEFAULT_OUTLIER,
                  request: Request | None = None,
                  protection: Protection = NO_PROTECTION,
                  shadow: bool = False) -> tuple[UpstreamResponse, int]:
    """One request to a deployment (held through a cold start); the answer and the
    upstream time in milliseconds. Counted for the autoscaler, except the documents the
    gateway answers itself. With ``request``, the metrics step finds on it who served it,
    the upstream time and any cold start; its rate limits are checked and its deadline
    set. A ``shadow`` (mirror) copy never waits for a replica."""
    if request is not None:
        request[SERVED_BY] = dep
    up = local_document(dep, method, path_qs)
    if up is not None:
        return up, 0
    deadline = None
    if request is not None:
        check_rate_limits(request, protection, "deployment", dep.id, dep.rate_limits)
        if DEADLINE_KEY in request:
            deadline = request[DEADLINE_KEY]
        else:
            deadline = request[DEADLINE_KEY] = deadline_of(request.headers, dep.admission,
                                                           time.monotonic())
    dep.requests += 1
    dep.in_flight += 1
    started = 0.0
    try:
        if not dep.replicas:
            if shadow:
                raise Shed(f"model deployment {dep.id!r} has no ready replica: the mirror "
                           "copy is dropped", "no_replica")
            if request is not None:
                request[COLD_START] = True
            await hold_for_replica(dep, deadline, protection.processes, request)
            up = local_document(dep, method, path_qs)  # known once a replica ran
            if up is not None:
                return up, 0
        started = time.perf_counter()
        up = await send_to_deployment(pool, dep, method, path_qs, headers, body, outlier,
                                      deadline, protection.processes, shadow, request)
    finally:
        dep.in_flight -= 1
        if started and request is not None:  # timed also when the replica failed
            request[UPSTREAM_SECONDS] = time.perf_counter() - started
    return up, int((time.perf_counter() - started) * 1000)


def make_proxy_handler(table: RouteTable, pool: UpstreamPool, sink: RecordSink,
                       outlier: OutlierPolicy = DEFAULT_OUTLIER,
                       deployment_id: str | None = None,
                       protection: Protection = NO_PROTECTION) -> Callable[[Request], object]:
    """``/model/<id>/...``; with ``deployment_id`` (a sidecar) every path goes to that one."""

    async def proxy(request: Request) -> Answer:
        dep_id = deployment_id or model_deployment_id(request.path)
        if dep_id is None:
            raise NotFound(f"no route for {request.path}")
        dep = table.get(dep_id)
        if dep is None:
            raise NotFound(f"model deployment {dep_id!r} not found")
        mount = "" if deployment_id else f"/model/{dep_id}"
        path_qs = upstream_path(request.raw_path, mount)
        body = await request.read()
        request_id = request[REQUEST_ID_KEY]
        out = upstream_headers(request.headers, request_id, request.remote, request.scheme)
        try:
            up, upstream_ms = await forward(pool, dep, request.method, path_qs, out, body,
                                            outlier, request, protection)
        except GatewayError as exc:
            if exc.record:
                sink(failed_exchange(request, dep, path_qs, body, exc))
            raise
        headers = response_headers(up.headers, request_id, dep.model_name, dep.model_version,
                                   upstream_ms)
        rate_limit_headers(request, headers)
        sink(exchange_of(request, dep, path_qs, body, up, headers))
        return Answer(up.status, headers, up.body)

    return proxy


def exchange_of(request: Request, dep: Deployment, path_qs: str, body: bytes,
                up: UpstreamResponse, headers: CIMultiDict[str],
                extra: dict[str, object] | None = None,
                route_id: str | None = None) -> Exchange:
    """The record of one forwarded call (``/model/`` and ``/custom/`` alike): ``headers`` as
    answered to the caller; marks a request body the server decoded (gzip) before forwarding."""
    decoded = decoded_request_encoding(request.headers)
    if decoded:
        extra = {**(extra or {}), "request_content_decoded": decoded}
    return make_exchange(request[REQUEST_ID_KEY], dep, request.method, request.raw_path,
                         path_qs, request.host, request.scheme, request.headers.items(), body,
                         up.status, headers.items(), up.body, extra, route_id,
                         request.get(UPSTREAM_SECONDS))


def failed_exchange(request: Request, dep: Deployment, path_qs: str, body: bytes,
                    exc: GatewayError, extra: dict[str, object] | None = None,
                    route_id: str | None = None) -> Exchange:
    """The record of a call the gateway answered itself after choosing ``dep`` (its 502,
    503 or 504, with the JSON reason the caller gets)."""
    headers = CIMultiDict({"content-type": "application/json", **exc.headers,
                           "request-id": request[REQUEST_ID_KEY]})
    error = UpstreamResponse(exc.status, headers,
                             orjson.dumps(default_error_body(exc.status, exc.message, exc.kind)))
    return exchange_of(request, dep, path_qs, body, error, headers, extra, route_id)


def make_exchange(request_id: str, dep: Deployment, method: str, uri: str, path_qs: str,
                  host: str, scheme: str, request_headers: Iterable[tuple[str, str]],
                  body: bytes, status: int, response_headers: Iterable[tuple[str, str]],
                  response_body: bytes, extra: dict[str, object] | None = None,
                  route_id: str | None = None,
                  upstream_seconds: float | None = None) -> Exchange:
    """The one place an :class:`Exchange` is built from a deployment's answer (also for the
    copies of :mod:`gateway.mirror`): the model's name and version come from ``dep``."""
    return Exchange(
        request_id=request_id, model_name=dep.model_name, model_version=dep.model_version,
        method=method, uri=uri, upstream_path=path_qs, host=host, scheme=scheme,
        request_headers=request_headers, request_body=body, status=status,
        response_headers=response_headers, response_body=response_body,
        when=datetime.now(UTC), extra=extra, deployment_id=dep.id, route_id=route_id,
        upstream_seconds=upstream_seconds,
    )
