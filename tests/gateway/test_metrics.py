"""``/metrics`` of the real gateway app against an in-process model server, read back with
prometheus-client's own parser."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from deploy.compose import build_app, build_writer
from deploy.config import load_settings
from gateway import GatewayConfig, RouteTable, create_app
from gateway.app import OBSERVER
from gateway.metrics import DURATION_BUCKETS, DeploymentState, ReplicaUsage
from gateway.traffic import TrafficRoute, WeightedTarget
from storage import WriterStats

RELEASE = web.AppKey("release", asyncio.Event)
ARRIVED = web.AppKey("arrived", asyncio.Event)


async def model_server() -> TestServer:
    app = web.Application()
    app[RELEASE], app[ARRIVED] = asyncio.Event(), asyncio.Event()

    async def invoke(_request):
        return web.json_response({"prediction": [6.0]}, headers={"Model-Name": "wine"})

    async def bad(_request):
        return web.json_response({"message": "missing columns"}, status=400)

    async def held(_request):
        app[ARRIVED].set()
        await app[RELEASE].wait()
        return web.json_response({"prediction": [1.0]})

    app.router.add_post("/api/model/invoke", invoke)
    app.router.add_post("/bad", bad)
    app.router.add_post("/held", held)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def gw():
    upstream = await model_server()
    table = RouteTable()
    table.upsert("wine", "wine", "1.0")
    table.set_replicas("wine", [("127.0.0.1", upstream.port)])
    table.upsert("idle", "idle", "3")  # no replica, no cold-start wait: 503 at once
    app = create_app(GatewayConfig(), table, lambda _e: None)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client, table, app, upstream
    await client.close()
    await upstream.close()


async def scrape(client: TestClient) -> dict[tuple[str, frozenset], float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    out = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples, name: str, **labels) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def labels(dep: str, code: int, model: str = "wine", version: str = "1.0") -> dict:
    return {"deployment": dep, "route": "default", "model_name": model,
            "model_version": version, "code": str(code)}


async def test_requests_are_counted_by_deployment_route_model_and_code(gw):
    client, *_ = gw
    for _ in range(3):
        assert (await client.post("/model/wine/api/model/invoke", json={})).status == 200
    for _ in range(2):
        assert (await client.post("/model/wine/bad", json={})).status == 400
    assert (await client.post("/model/idle/api/model/invoke", json={})).status == 503
    assert (await client.post("/model/ghost/api/model/invoke", json={})).status == 404
    s = await scrape(client)
    assert value(s, "mlgate_requests_total", **labels("wine", 200)) == 3
    assert value(s, "mlgate_requests_total", **labels("wine", 400)) == 2
    assert value(s, "mlgate_requests_total", **labels("idle", 503, "idle", "3")) == 1
    assert not [k for k in s if dict(k[1]).get("deployment") == "ghost"]  # unknown: no series
    for name in ("mlgate_request_duration_seconds", "mlgate_gateway_overhead_seconds"):
        assert value(s, f"{name}_count", **labels("wine", 200)) == 3
        assert value(s, f"{name}_bucket", **labels("wine", 200), le="+Inf") == 3
    assert value(s, "mlgate_upstream_duration_seconds_count", **labels("wine", 400)) == 2
    # no replica was called for the 503: no upstream time, all of it is the gateway's
    assert value(s, "mlgate_upstream_duration_seconds_count", **labels("idle", 503, "idle",
                                                                        "3")) == 0
    assert value(s, "mlgate_gateway_overhead_seconds_count", **labels("idle", 503, "idle",
                                                                       "3")) == 1
    assert value(s, "mlgate_cold_start_requests_total", deployment="idle") == 1
    assert value(s, "mlgate_cold_start_requests_total", deployment="wine") is None


async def test_durations_add_up_and_the_buckets_resolve_sub_millisecond_times(gw):
    client, *_ = gw
    for _ in range(5):
        await client.post("/model/wine/api/model/invoke", json={})
    s = await scrape(client)
    total = value(s, "mlgate_request_duration_seconds_sum", **labels("wine", 200))
    upstream = value(s, "mlgate_upstream_duration_seconds_sum", **labels("wine", 200))
    overhead = value(s, "mlgate_gateway_overhead_seconds_sum", **labels("wine", 200))
    assert 0 < upstream < total
    assert overhead == pytest.approx(total - upstream)
    assert DURATION_BUCKETS[:4] == (0.0001, 0.00025, 0.0005, 0.00075)
    assert value(s, "mlgate_gateway_overhead_seconds_bucket", **labels("wine", 200),
                 le="0.0005") is not None


async def test_in_flight_is_read_from_the_table_when_scraped(gw):
    client, _, _, upstream = gw
    s = await scrape(client)
    assert value(s, "mlgate_requests_in_flight", deployment="wine") == 0
    pending = asyncio.ensure_future(client.post("/model/wine/held", json={}))
    await asyncio.wait_for(upstream.app[ARRIVED].wait(), 10)
    s = await scrape(client)
    assert value(s, "mlgate_requests_in_flight", deployment="wine") == 1
    upstream.app[RELEASE].set()
    assert (await pending).status == 200
    s = await scrape(client)
    assert value(s, "mlgate_requests_in_flight", deployment="wine") == 0


async def test_a_new_model_version_gets_its_own_series(gw):
    client, table, *_ = gw
    await client.post("/model/wine/api/model/invoke", json={})
    table.upsert("wine", "wine", "2.0")
    await client.post("/model/wine/api/model/invoke", json={})
    s = await scrape(client)
    assert value(s, "mlgate_requests_total", **labels("wine", 200)) == 1
    assert value(s, "mlgate_requests_total", **labels("wine", 200, version="2.0")) == 1


async def test_replicas_and_state_come_from_the_table_or_the_control_plane(gw):
    client, _, app, _ = gw
    s = await scrape(client)  # no control plane attached: what the table says
    assert value(s, "mlgate_replicas_available", deployment="wine") == 1
    assert value(s, "mlgate_deployment_state", deployment="wine", state="Ready") == 1
    assert value(s, "mlgate_deployment_state", deployment="idle", state="Processing") == 1
    app[OBSERVER].attach(view=lambda: [
        DeploymentState("wine", "Ready", 3, 2, replicas=(
            ReplicaUsage("wine-0", 1.5, 100 << 20), ReplicaUsage("wine-1", 0.25, 90 << 20))),
        DeploymentState("idle", "Failed", 0, 0, reason="model cannot be loaded")])
    s = await scrape(client)
    assert value(s, "mlgate_replicas_desired", deployment="wine") == 3
    assert value(s, "mlgate_replicas_available", deployment="wine") == 2
    assert value(s, "mlgate_deployment_state", deployment="idle", state="Failed") == 1
    assert value(s, "mlgate_replica_cpu_seconds_total", deployment="wine",
                 replica="wine-0") == 1.5
    assert value(s, "mlgate_replica_resident_memory_bytes", deployment="wine",
                 replica="wine-1") == 90 << 20
    assert value(s, "process_resident_memory_bytes") > 0  # the gateway process itself


async def test_the_storage_writers_counters_are_exported(gw):
    client, _, app, _ = gw
    stats = WriterStats()
    stats.written["request_response"] = 7
    stats.dropped["response_body"] = 2
    stats.refused["feedback"] = 1
    stats.spool_bytes, stats.spool_segments, stats.upload_failures = 4096, 2, 3
    app[OBSERVER].attach(writer_stats=stats)
    s = await scrape(client)
    assert value(s, "mlgate_records_written_total", kind="request_response") == 7
    assert value(s, "mlgate_records_dropped_total", kind="response_body") == 2
    assert value(s, "mlgate_feedback_refused_total", kind="feedback") == 1
    assert value(s, "mlgate_spool_bytes") == 4096
    assert value(s, "mlgate_spool_segments") == 2
    assert value(s, "mlgate_storage_upload_failures_total") == 3
    stats.spool_bytes = 0  # read when scraped, not copied when attached
    assert value(await scrape(client), "mlgate_spool_bytes") == 0


async def test_feedback_is_counted_by_form_and_code(tmp_path):
    settings = load_settings(env={}, overrides={"data_dir": str(tmp_path)})
    writer = build_writer(settings)
    await writer.start()
    app = build_app(settings, RouteTable(), writer, auth=None)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        seed = {"x-model-name": "wine", "x-model-version": "1.0", "Request-ID": "r1"}
        assert (await client.post("/feedback/model/", json={"ok": 1}, headers=seed)).status == 200
        assert (await client.post("/api/v1/feedback", json={})).status == 400
        s = await scrape(client)
        assert value(s, "mlgate_feedback_received_total", form="seed", code="200") == 1
        assert value(s, "mlgate_feedback_received_total", form="sdk", code="400") == 1
        assert value(s, "mlgate_records_spooled_total", kind="feedback") == 1
    finally:
        await client.close()
        await writer.close()


async def test_model_route_requests_are_counted_for_the_target_under_the_route_id(gw):
    client, table, *_ = gw
    table.upsert("wine-b", "wine", "2.0")
    table.set_replicas("wine-b", [(r.host, r.port) for r in table.get("wine").replicas])
    table.set_routes([TrafficRoute("wine-ab", "/custom/wine",
                                   (WeightedTarget("wine", 0), WeightedTarget("wine-b", 100)),
                                   mirror="wine", mirror_percent=100)])
    for _ in range(4):
        resp = await client.post("/custom/wine/api/model/invoke", json={})
        assert resp.status == 200 and resp.headers["x-mlgate-target"] == "wine-b"
    await asyncio.sleep(0)  # let the mirror copies start

    def mirrored(samples) -> float:
        return sum(value(samples, "mlgate_mirror_copies_total", result=r) or 0
                   for r in ("answered", "failed"))

    for _ in range(100):  # the copies are fire-and-forget: wait until all four came back
        s = await scrape(client)
        if mirrored(s) == 4:
            break
        await asyncio.sleep(0.05)
    assert value(s, "mlgate_requests_total", deployment="wine-b", route="wine-ab",
                 model_name="wine", model_version="2.0", code="200") == 4
    assert value(s, "mlgate_mirror_copies_total", result="copied") == 4
    assert value(s, "mlgate_mirror_copies_total", result="answered") == 4
