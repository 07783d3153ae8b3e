"""Every Prometheus metric mlgate exports, in one module (prometheus-client).

Two kinds:

* **per request**, updated on the request path: ``mlgate_requests_total``, the
  duration histograms, feedback and cold-start counters. Their labelled children
  are resolved once per (deployment, route, code) and cached, so a request costs
  a dict lookup, one counter increment and three histogram observations (plain
  numbers, see :mod:`gateway.series`).
* **state**, read at scrape time (on the event loop) by :class:`StateCollector` from
  what the gateway and the control plane already hold (the routing table, the
  control plane's view of each deployment with its replicas' CPU and memory, the
  storage writer's counters): nothing is updated per request for them. Rendering
  the text (tens of milliseconds with many series) happens in a worker thread.

Each :class:`GatewayMetrics` has its own registry (tests build several apps in one
process). A multi-worker mode would switch to prometheus-client's multiprocess
mode here, and only here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from storage import WriterStats

from .peers import PEER_FAMILIES, Peers, merge_families, sum_writer_stats
from .refusals import Refusals
from .routing import Deployment, RouteTable
from .series import RequestSeries, Series

REQUEST_LABELS = ("deployment", "route", "model_name", "model_version", "code")
DURATION_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05,
    0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
"""Seconds. Fine below a millisecond, where the gateway's own overhead lives."""
DEFAULT_ROUTE = "default"
"""The ``route`` label of ``/model/<id>/...`` requests (a deployment's default route)."""
CONTENT_TYPE = CONTENT_TYPE_LATEST

disable_created_metrics()  # no ``*_created`` series: half the output, and nothing reads them


@dataclass(frozen=True, slots=True)
class ReplicaUsage:
    """One replica's resources, as its runtime measured them."""

    replica: str
    cpu_seconds: float
    resident_bytes: int


@dataclass(frozen=True, slots=True)
class DeploymentState:
    """The control plane's view of one deployment (the gateway cannot read the store)."""

    id: str
    state: str
    desired_replicas: int
    available_replicas: int
    reason: str = ""
    replicas: tuple[ReplicaUsage, ...] = ()


ControlPlaneView = Callable[[], Sequence[DeploymentState]]
"""Called at scrape time (and by the status page); must be quick and must not block."""


@dataclass(slots=True)
class _Children:
    model_name: str
    model_version: str
    series: Series


class GatewayMetrics:
    """The per-request metrics and the registry that also serves the state metrics."""

    def __init__(self, table: RouteTable) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.series = RequestSeries(REQUEST_LABELS, DURATION_BUCKETS, (
            "mlgate_requests", "Requests answered for a model deployment, by status code"), (
            ("mlgate_request_duration_seconds",
             "Time from the request reaching the gateway to its answer (gateway total)"),
            ("mlgate_upstream_duration_seconds",
             "Time a replica took to answer (the upstream part of the total)"),
            ("mlgate_gateway_overhead_seconds",
             "Total minus upstream: the gateway's own time (filters, routing, cold-start "
             "hold)")))
        r.register(self.series)
        self.feedback = Counter(
            "mlgate_feedback_received", "Feedback requests answered, by form and status code",
            ("form", "code"), registry=r)
        self.cold_starts = Counter(
            "mlgate_cold_start_requests",
            "Requests that found no ready replica and were held for one (scale from zero)",
            ("deployment",), registry=r)
        self.refusals = Refusals(r)
        """Shed, rate-limited, timed-out and revoked requests (:mod:`gateway.refusals`)."""
        self.state = StateCollector(table)
        """Not in the registry: it reads loop-owned state, so it runs on the loop, and the
        rest is rendered in a thread (see :meth:`exposition`)."""
        r.register(ProcessCollector(registry=None))
        self._children: dict[tuple[str, str, int], _Children] = {}
        self._feedback: dict[tuple[str, int], Any] = {}
        self._cold: dict[str, Any] = {}

    def observe_request(self, dep: Deployment, route: str, code: int, total: float,
                        upstream: float | None) -> None:
        """One answered request; ``upstream`` None when no replica was called."""
        c = self._children.get((dep.id, route, code))
        if c is None or c.model_version != dep.model_version or c.model_name != dep.model_name:
            c = self._resolve(dep, route, code)
        s = c.series
        s.count += 1
        s.total.observe(total)
        if upstream is None:
            s.overhead.observe(total)
        else:
            s.upstream.observe(upstream)
            s.overhead.observe(total - upstream)

    def _resolve(self, dep: Deployment, route: str, code: int) -> _Children:
        labels = (dep.id, route, dep.model_name, dep.model_version, str(code))
        c = _Children(dep.model_name, dep.model_version, self.series.series(labels))
        self._children[(dep.id, route, code)] = c
        return c

    def observe_feedback(self, form: str, code: int) -> None:
        child = self._feedback.get((form, code))
        if child is None:
            child = self._feedback[(form, code)] = self.feedback.labels(form, str(code))
        child.inc()

    def observe_cold_start(self, dep: Deployment) -> None:
        child = self._cold.get(dep.id)
        if child is None:
            child = self._cold[dep.id] = self.cold_starts.labels(dep.id)
        child.inc()

    def exposition(self, state: list[Any] | None = None,
                   peers: Sequence[Iterable[Any]] = ()) -> bytes:
        """The text format, as ``/metrics`` answers it.

        ``state``: the state families already collected (on the loop); the per-request
        metrics are thread-safe, so this may then run in a worker thread. ``peers``: the
        per-request families of the other gateway processes, added in (``gateway.peers``).
        """
        families = list(self.state.collect()) if state is None else state
        own = generate_latest(self.registry) if not peers else generate_latest(
            _Families(merge_families(self.registry.collect(), peers)))
        return own + generate_latest(_Families(families))

    def request_families(self) -> list[Any]:
        """This process's per-request families, for the primary to add (``gateway.peers``)."""
        return [m for m in self.registry.collect() if m.name in PEER_FAMILIES]


class _Families:
    """Already collected families, in the shape ``generate_latest`` reads."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> list[Any]:
        return self.families


class StateCollector(Collector):
    """Gauges and counters read at scrape time from state others keep."""

    def __init__(self, table: RouteTable) -> None:
        self.table = table
        self.view: ControlPlaneView | None = None
        self.writer_stats: WriterStats | None = None
        self.peers: Peers | None = None
        """The other gateway processes' reports (``mlgate up --workers``), when any."""
        self.mirror_stats: Any | None = None
        """``gateway.mirror.MirrorStats``: copies sent to ModelRoutes' mirrors."""
        self.overload: Any | None = None
        """``gateway.overload.OverloadMonitor`` of this process."""
        self.extra: list[Collector] = []
        """Other packages' state metrics (the feedback loop's), read on the loop like these."""

    def describe(self) -> Iterable[Any]:
        return ()  # the families depend on what is attached; registered without a check

    def collect(self) -> Iterable[Any]:
        entries = self.table.deployments()
        in_flight = GaugeMetricFamily(
            "mlgate_requests_in_flight", "Requests a deployment is handling now "
            "(held for a cold start or waiting for a replica)", labels=["deployment"])
        for dep in entries:
            in_flight.add_metric([dep.id], dep.in_flight + dep.peer_in_flight)
        yield in_flight
        yield from self._deployments(entries)
        if self.writer_stats is not None:
            stats = self.writer_stats
            if self.peers:
                stats = sum_writer_stats([stats, *self.peers.writer_stats()])
            yield from writer_families(stats)
        if self.mirror_stats is not None:
            copies = CounterMetricFamily(
                "mlgate_mirror_copies", "Copies for ModelRoutes' mirrors: started (copied), "
                "not started as too many were in flight (dropped), answered, failed",
                labels=["result"])
            for result, count in self.mirror_stats.as_dict().items():
                copies.add_metric([result], count)
            yield copies
        if self.overload is not None:
            yield from overload_families(self.overload)
        for collector in self.extra:
            yield from collector.collect()

    def _deployments(self, entries: list[Deployment]) -> Iterable[Any]:
        states = list(self.view()) if self.view is not None else table_view(entries)
        desired = GaugeMetricFamily("mlgate_replicas_desired",
                                    "Replicas the autoscaler wants", labels=["deployment"])
        available = GaugeMetricFamily("mlgate_replicas_available",
                                      "Replicas ready to serve", labels=["deployment"])
        state = GaugeMetricFamily("mlgate_deployment_state",
                                  "1 for the deployment's current state (Ready, Processing, "
                                  "Failed, Deleting)", labels=["deployment", "state"])
        cpu = CounterMetricFamily("mlgate_replica_cpu_seconds",
                                  "CPU time (user + system) used by a replica process",
                                  labels=["deployment", "replica"])
        memory = GaugeMetricFamily("mlgate_replica_resident_memory_bytes",
                                   "Resident memory of a replica process",
                                   labels=["deployment", "replica"])
        for s in states:
            desired.add_metric([s.id], s.desired_replicas)
            available.add_metric([s.id], s.available_replicas)
            state.add_metric([s.id, s.state], 1)
            for r in s.replicas:
                cpu.add_metric([s.id, r.replica], r.cpu_seconds)
                memory.add_metric([s.id, r.replica], r.resident_bytes)
        yield from (desired, available, state, cpu, memory)


def overload_families(monitor: Any) -> Iterable[Any]:
    """This process's overload state (``gateway.overload``): the primary's own with
    ``--workers`` (each worker sheds on its own marks; the refusal counters add up). Its
    memory is prometheus-client's ``process_resident_memory_bytes``."""
    yield GaugeMetricFamily("mlgate_overload_level", "The gateway process's overload level: "
                            "0 normal, 1 mirror copies shed, 2 new requests shed too",
                            value=monitor.level)
    yield GaugeMetricFamily("mlgate_event_loop_lag_seconds", "How late the gateway's event "
                            "loop ran the overload sampler at its last sample",
                            value=monitor.last.lag_ms / 1000)


def table_view(entries: Iterable[Deployment]) -> list[DeploymentState]:
    """What the routing table alone tells, when no control plane is attached."""
    out = []
    for dep in entries:
        if dep.replicas:
            state = "Ready"
        elif dep.unavailable_reason:
            state = "Failed"
        else:
            state = "Processing"
        out.append(DeploymentState(dep.id, state, len(dep.replicas), len(dep.replicas),
                                   dep.unavailable_reason))
    return out


def writer_families(stats: WriterStats) -> Iterable[Any]:
    """The storage writer's counters (``storage.stats.WriterStats``)."""
    for name, help_text, per_kind in (
            ("mlgate_records_spooled", "Records appended to the local spool", stats.spooled),
            ("mlgate_records_written", "Records stored in the bucket", stats.written),
            ("mlgate_records_dropped", "Request records given up (spool or queue full)",
             stats.dropped),
            ("mlgate_feedback_refused", "Feedback records refused with 503 (spool full)",
             stats.refused)):
        family = CounterMetricFamily(name, help_text, labels=["kind"])
        for kind, value in sorted(per_kind.items()):
            family.add_metric([kind], value)
        yield family
    yield CounterMetricFamily("mlgate_storage_objects", "Objects uploaded to the bucket",
                              value=stats.objects)
    yield CounterMetricFamily("mlgate_storage_upload_failures",
                              "Failed object uploads (each one is retried)",
                              value=stats.upload_failures)
    yield GaugeMetricFamily("mlgate_spool_bytes", "Bytes waiting in the local spool",
                            value=stats.spool_bytes)
    yield GaugeMetricFamily("mlgate_spool_segments", "Segment files in the local spool",
                            value=stats.spool_segments)
    reasons = CounterMetricFamily(
        "mlgate_records_dropped_by_reason", "Request records given up, by why: queue_full "
        "(the writer's in-memory queue), spool_full, shutting_down, invalid, spool_error",
        labels=["reason"])
    for reason in ("queue_full", "spool_full"):  # always there, so alerts have a series
        reasons.add_metric([reason], stats.drop_reasons.get(reason, 0))
    for reason, value in sorted(stats.drop_reasons.items()):
        if reason not in ("queue_full", "spool_full"):
            reasons.add_metric([reason], value)
    yield reasons
    yield GaugeMetricFamily("mlgate_record_queue_length", "Exchanges waiting in the record "
                            "writer's memory to be spooled", value=stats.queue_length)
    yield GaugeMetricFamily("mlgate_record_queue_capacity", "The bound of that queue "
                            "(storage.max_pending_records); beyond, records are dropped",
                            value=stats.queue_capacity)
