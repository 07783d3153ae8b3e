"""The status page's data: rolling windows and the summary as pure functions, then
``/status/api/summary`` in the real gateway app."""

from __future__ import annotations

import socket

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import GatewayConfig, RouteTable, create_app
from gateway.metrics import DeploymentState
from gateway.rolling import LATENCY_BOUNDS, Totals, Window, quantile
from gateway.routing import Deployment
from gateway.status import summarize

# -- rolling windows ----------------------------------------------------------------------------


def test_totals_count_requests_errors_and_latency_of_the_span():
    w = Window(60)
    for second, latency, error in [(100, 0.0015, False), (100, 0.0015, True),
                                   (101, 0.0015, False), (130, 0.5, True)]:
        w.add(second, latency, error)
    t = w.totals(130, 60)
    assert (t.requests, t.errors) == (4, 2)
    assert t.error_ratio == 0.5
    assert w.totals(101, 2).requests == 3
    assert w.totals(130, 1) == Totals(1, 1, w.totals(130, 1).buckets)
    assert w.totals(99, 60).requests == 0  # before anything happened


def test_a_slot_is_reused_when_its_second_comes_round_again():
    w = Window(10)
    w.add(5, 0.001, True)
    w.add(15, 0.002, False)  # same slot, ten seconds later: the old second is gone
    assert w.totals(15, 10) == Totals(1, 0, w.totals(15, 10).buckets)
    assert w.totals(15, 10).quantile(0.5) == pytest.approx(0.0015)
    assert w.totals(5, 1).requests == 0  # asked for a second the slot no longer holds
    assert w.totals(25, 10).requests == 0  # everything older than the window


def test_spans_longer_than_the_window_are_capped():
    w = Window(5)
    for second in range(100, 110):
        w.add(second, 0.001, False)
    assert w.totals(109, 1000).requests == 5


def test_series_points_are_oldest_first_and_cover_whole_steps():
    w = Window(300)
    for second in (991, 992, 999, 1000):
        w.add(second, 0.001, second == 1000)
    points = w.series(1000, 20, 5)
    assert [end for end, _ in points] == [985, 990, 995, 1000]
    assert [t.requests for _, t in points] == [0, 0, 2, 2]  # 991-995 and 996-1000
    assert points[-1][1].errors == 1
    with pytest.raises(ValueError):
        w.series(1000, 20, 0)
    with pytest.raises(ValueError):
        Window(0)


def test_quantiles_interpolate_inside_the_bucket_like_histogram_quantile():
    buckets = [0] * (len(LATENCY_BOUNDS) + 1)
    i = LATENCY_BOUNDS.index(0.002)  # (0.001, 0.002]
    buckets[i] = 100
    assert quantile(0.5, buckets) == pytest.approx(0.0015)
    assert quantile(0.99, buckets) == pytest.approx(0.001 + 0.001 * 0.99)
    buckets[-1] = 100  # slower than the last bound
    assert quantile(0.99, buckets) == LATENCY_BOUNDS[-1]
    assert quantile(0.5, [0] * len(buckets)) is None
    first = [10] + [0] * len(LATENCY_BOUNDS)
    assert quantile(0.5, first) == pytest.approx(LATENCY_BOUNDS[0] / 2)


# -- the summary --------------------------------------------------------------------------------


def test_the_summary_has_one_entry_per_deployment_with_last_minute_and_series():
    w = Window(300)
    for s in range(941, 1001):
        w.add(s, 0.004, s % 30 == 0)
    entry = Deployment("wine", "wine", "1.0")
    entry.in_flight = 2
    doc = summarize(
        [DeploymentState("wine", "Ready", 2, 1), DeploymentState("beer", "Failed", 1, 0,
                                                                  reason="cannot load")],
        {"wine": entry}, {"wine": w}, now=1000, storage={"spool_bytes": 0})
    assert [d["id"] for d in doc["deployments"]] == ["beer", "wine"]
    beer, wine = doc["deployments"]
    assert beer["state"] == "Failed" and beer["reason"] == "cannot load"
    assert beer["last_minute"] == {"requests": 0, "rate": 0.0, "errors": 0, "error_ratio": None,
                                   "p50_ms": None, "p90_ms": None, "p99_ms": None}
    assert beer["model_name"] == "" and len(beer["series"]["time"]) == 60
    assert wine["replicas"] == {"desired": 2, "available": 1} and wine["in_flight"] == 2
    minute = wine["last_minute"]
    assert (minute["requests"], minute["errors"], minute["rate"]) == (60, 2, 1.0)
    assert minute["error_ratio"] == pytest.approx(2 / 60, abs=1e-6)
    assert 3.0 < minute["p50_ms"] <= minute["p90_ms"] <= minute["p99_ms"] <= 5.0
    series = wine["series"]
    assert series["time"][-1] == 1000 and series["time"][1] - series["time"][0] == 5
    assert series["rate"][-1] == 1.0 and series["rate"][0] == 0.0
    assert series["p50_ms"][0] is None and series["p99_ms"][-1] is not None
    assert doc["storage"] == {"spool_bytes": 0}
    assert (doc["last_seconds"], doc["span_seconds"], doc["step_seconds"]) == (60, 300, 5)


# -- the endpoint -------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def gw():
    async def invoke(_request):
        return web.json_response({"prediction": [1.0]})

    upstream_app = web.Application()
    upstream_app.router.add_post("/api/model/invoke", invoke)
    upstream = TestServer(upstream_app, host="127.0.0.1")
    await upstream.start_server()
    table = RouteTable()
    table.upsert("wine", "wine", "1.0")
    table.set_replicas("wine", [("127.0.0.1", upstream.port)])
    table.upsert("down", "down", "1")
    table.set_replicas("down", [("127.0.0.1", closed_port())])  # refuses: 502
    client = TestClient(TestServer(create_app(GatewayConfig(), table, lambda _e: None),
                                   host="127.0.0.1"))
    await client.start_server()
    yield client, table
    await client.close()
    await upstream.close()


async def test_the_summary_endpoint_reports_live_traffic(gw):
    client, table = gw
    for _ in range(10):
        assert (await client.post("/model/wine/api/model/invoke", json={})).status == 200
    assert (await client.post("/model/down/api/model/invoke", json={})).status == 502
    resp = await client.get("/status/api/summary")
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    doc = await resp.json()
    deps = {d["id"]: d for d in doc["deployments"]}
    assert deps["wine"]["state"] == "Ready" and deps["wine"]["last_minute"]["requests"] == 10
    assert deps["wine"]["last_minute"]["errors"] == 0
    assert deps["wine"]["last_minute"]["p50_ms"] > 0
    assert deps["down"]["last_minute"]["errors"] == 1
    assert deps["down"]["last_minute"]["error_ratio"] == 1.0
    assert doc["storage"] is None  # no writer attached to this bare gateway
    table.remove("down")
    doc = await (await client.get("/status/api/summary")).json()
    assert [d["id"] for d in doc["deployments"]] == ["wine"]
