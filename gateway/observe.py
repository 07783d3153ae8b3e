"""The observe filter: Prometheus metrics, the status page's windows and the access log.

Outermost in the chain, so it times the whole request and sees its final status,
error answers included. What only the proxy knows it leaves on the request:
``SERVED_BY`` (the deployment that answered — a router choosing among several sets
it too), ``UPSTREAM_SECONDS`` and ``COLD_START``. The work lives beside this
module: ``metrics`` (prometheus-client), ``rolling`` (windows), ``access_log``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from prometheus_client.registry import Collector

from storage import WriterStats

from .access_log import AccessLog
from .auth import PRINCIPAL_KEY, ROUTE_ID_KEY
from .errors import REFUSED_KEY, Handler
from .metrics import (
    CONTENT_TYPE,
    DEFAULT_ROUTE,
    ControlPlaneView,
    DeploymentState,
    GatewayMetrics,
    table_view,
)
from .peers import PeerReport, Peers, sum_writer_stats
from .request_id import REQUEST_ID_KEY
from .rolling import Window
from .routing import Deployment, RouteTable, model_deployment_id

log = logging.getLogger("mlgate.gateway")

SERVED_BY = web.RequestKey("mlgate_served_by", Deployment)
UPSTREAM_SECONDS = web.RequestKey("mlgate_upstream_seconds", float)
COLD_START = web.RequestKey("mlgate_cold_start", bool)

FEEDBACK_FORMS = {"/feedback/model/": "seed", "/feedback/model": "seed",
                  "/api/v1/feedback": "sdk"}
WINDOW_SECONDS = 300
METRICS_PATH = "/metrics"


class Observer:
    """What the observe filter feeds; the status page and ``/metrics`` read it."""

    def __init__(self, table: RouteTable, access_log: bool = True,
                 window_seconds: int = WINDOW_SECONDS) -> None:
        self.table = table
        self.metrics = GatewayMetrics(table)
        self.window_seconds = window_seconds
        self.windows: dict[str, Window] = {}
        self.access = AccessLog() if access_log else None
        self.peers = Peers()
        self.metrics.state.peers = self.peers
        self._reported_until = int(time.time()) - 1

    def attach(self, view: ControlPlaneView | None = None,
               writer_stats: WriterStats | None = None, mirror_stats: object = None,
               collector: Collector | None = None, overload: object = None) -> None:
        """What the control plane knows (states, replicas, their CPU and memory), the
        storage writer's and the mirror's counters, another package's metrics
        (``collector``, a prometheus-client collector), the process's overload monitor;
        read when scraped or asked for."""
        if overload is not None:
            self.metrics.state.overload = overload
        if collector is not None:
            self.metrics.state.extra.append(collector)
        if view is not None:
            self.metrics.state.view = view
        if writer_stats is not None:
            self.metrics.state.writer_stats = writer_stats
        if mirror_stats is not None:
            self.metrics.state.mirror_stats = mirror_stats

    def states(self) -> list[DeploymentState]:
        view = self.metrics.state.view
        return list(view()) if view is not None else table_view(self.table.deployments())

    @property
    def writer_stats(self) -> WriterStats | None:
        own = self.metrics.state.writer_stats
        if own is None or not self.peers:
            return own
        return sum_writer_stats([own, *self.peers.writer_stats()])

    # -- several gateway processes (``mlgate up --workers``; see ``gateway.peers``) -----------

    def peer_report(self, now: int | None = None) -> PeerReport:
        """What a worker sends the primary: its counters, and the window seconds completed
        since the last report."""
        now = int(time.time()) if now is None else now
        first, last = self._reported_until + 1, now - 1
        windows = {dep_id: slots for dep_id, w in self.windows.items()
                   if (slots := w.slots(first, last))}
        self._reported_until = max(self._reported_until, last)
        return PeerReport(self.metrics.request_families(), windows,
                          self.metrics.state.writer_stats)

    def take_peer(self, index: int, report: PeerReport) -> None:
        """A worker's report, on the primary."""
        self.peers.take(index, report)
        for dep_id, slots in report.windows.items():
            window = self.windows.get(dep_id)
            if window is None:
                window = self.windows[dep_id] = Window(self.window_seconds)
            for slot in slots:
                window.merge(*slot)

    def done(self, request: web.Request, status: int, seconds: float) -> None:
        """One finished request: count it where it belongs, queue its access line."""
        dep = request.get(SERVED_BY)
        if dep is None:
            dep_id = model_deployment_id(request.path)
            if dep_id is not None:
                dep = self.table.get(dep_id)
        upstream = request.get(UPSTREAM_SECONDS)
        route = ""
        refused = request.get(REFUSED_KEY)
        if refused is not None:
            self.metrics.refusals.count(refused, dep.id if dep is not None else "")
        if dep is not None:
            route = request.get(ROUTE_ID_KEY) or DEFAULT_ROUTE
            self.metrics.observe_request(dep, route, status, seconds, upstream)
            window = self.windows.get(dep.id)
            if window is None:
                window = self.windows[dep.id] = Window(self.window_seconds)
            window.add(int(time.time()), seconds, status >= 500)
            if COLD_START in request:
                self.metrics.observe_cold_start(dep)
        else:
            form = FEEDBACK_FORMS.get(request.path)
            if form is not None:
                self.metrics.observe_feedback(form, status)
        access = self.access
        if access is not None and access.enabled:
            principal = request.get(PRINCIPAL_KEY)
            access.record((time.time(), request.method, request.path, status, seconds,
                           upstream, request.get(REQUEST_ID_KEY, ""),
                           dep.id if dep is not None else "", route, request.remote or "",
                           principal.subject if principal is not None else ""))

    def forget_gone(self) -> None:
        """Drop the windows of deployments no longer in the table."""
        for dep_id in [d for d in self.windows if self.table.get(d) is None]:
            del self.windows[dep_id]

    async def ctx(self, _app: web.Application) -> AsyncIterator[None]:
        """``cleanup_ctx``: the access log's thread lives as long as the app."""
        if self.access is not None:
            self.access.start()
        yield
        if self.access is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.access.close)


def make_observe_filter(observer: Observer) -> Callable:
    done = observer.done
    clock = time.perf_counter

    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = clock()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away
            raise
        finally:
            try:
                done(request, status, clock() - started)
            except Exception:  # observing must never break an answer
                log.exception("observing %s %s failed", request.method, request.path)

    return observe


def add_metrics_route(app: web.Application, observer: Observer) -> None:
    """``GET /metrics``: open (no token), as Prometheus scrapes it."""
    metrics = observer.metrics

    async def handler(_request: web.Request) -> web.Response:
        # The state is read on the loop (only the loop may touch the table and the control
        # plane); the text is rendered in a thread, so a big scrape does not stall requests.
        observer.forget_gone()
        state = list(metrics.state.collect())
        peers = observer.peers.families()
        body = await asyncio.get_running_loop().run_in_executor(None, metrics.exposition, state,
                                                                peers)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    app.router.add_get(METRICS_PATH, handler, name="metrics")
