"""Summing what several gateway processes observed: metrics, status windows, writer counters."""

from prometheus_client import generate_latest

from gateway.observe import Observer
from gateway.peers import Peers, merge_families, sum_writer_stats
from gateway.rolling import Window
from gateway.routing import RouteTable
from storage import WriterStats


def observer_with(requests: int, code: int = 200) -> Observer:
    table = RouteTable()
    dep = table.upsert("wine", "wine", "1")
    obs = Observer(table, access_log=False)
    for _ in range(requests):
        obs.metrics.observe_request(dep, "default", code, 0.002, 0.001)
    return obs


def sample(families, name, **labels):
    for family in families:
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def test_counters_and_histograms_sum_and_new_series_are_kept():
    primary, worker, other = observer_with(3), observer_with(4), observer_with(2, code=503)
    merged = merge_families(primary.metrics.registry.collect(),
                            [worker.metrics.request_families(),
                             other.metrics.request_families()])
    assert sample(merged, "mlgate_requests_total", code="200") == 7
    assert sample(merged, "mlgate_requests_total", code="503") == 2
    assert sample(merged, "mlgate_request_duration_seconds_count", code="200") == 7
    assert sample(merged, "mlgate_request_duration_seconds_bucket", code="200", le="+Inf") == 7
    assert sample(list(primary.metrics.registry.collect()), "mlgate_requests_total",
                  code="200") == 3  # the inputs are left alone
    text = primary.metrics.exposition([], [worker.metrics.request_families()]).decode()
    assert 'mlgate_requests_total{code="200",deployment="wine"' in text
    assert generate_latest(primary.metrics.registry)  # still renders on its own


def test_a_retired_worker_keeps_counting_so_totals_never_go_down():
    peers = Peers()
    first = observer_with(5)
    peers.take(1, first.peer_report())
    peers.retire(1)
    again = observer_with(1)  # the restarted worker counts from zero
    peers.take(1, again.peer_report())
    merged = merge_families(observer_with(0).metrics.registry.collect(), peers.families())
    assert sample(merged, "mlgate_requests_total", code="200") == 6


def test_windows_merge_completed_seconds_only_once():
    worker, primary = observer_with(0), observer_with(0)
    now = 1_000_000
    worker._reported_until = now - 10
    window = worker.windows["wine"] = Window(300)
    for latency in (0.001, 0.002, 0.2):
        window.add(now - 2, latency, latency > 0.1)
    window.add(now, 0.001, False)  # the current second: not reported yet
    report = worker.peer_report(now)
    assert report.windows == {"wine": [(now - 2, 3, 1, report.windows["wine"][0][3])]}
    primary.windows["wine"] = Window(300)
    primary.windows["wine"].add(now - 2, 0.001, False)
    primary.take_peer(1, report)
    totals = primary.windows["wine"].totals(now, 10)
    assert (totals.requests, totals.errors) == (4, 1)
    assert worker.peer_report(now).windows == {}  # nothing new since
    assert worker.peer_report(now + 1).windows["wine"][0][:3] == (now, 1, 0)


def test_writer_counters_add_up_and_a_retired_worker_keeps_no_spool_bytes():
    a, b = WriterStats(), WriterStats()
    a.spooled["feedback"], b.spooled["feedback"] = 2, 3
    a.spool_bytes, b.spool_bytes, b.objects = 10, 5, 4
    total = sum_writer_stats([a, b])
    assert (total.spooled["feedback"], total.spool_bytes, total.objects) == (5, 15, 4)
    peers = Peers()
    obs = observer_with(0)
    obs.metrics.state.writer_stats = b
    peers.take(2, obs.peer_report())
    peers.retire(2)
    retired = sum_writer_stats(peers.writer_stats())
    assert (retired.spooled["feedback"], retired.spool_bytes) == (3, 0)
