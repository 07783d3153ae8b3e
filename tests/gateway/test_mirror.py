"""Shadow copies through the real gateway app to in-process upstreams: fire-and-forget,
logged under the mirror's own model, bounded."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway import MIRROR, GatewayConfig, RouteTable, create_app
from gateway.traffic import TrafficRoute, WeightedTarget
from tests.gateway.traffic_upstreams import free_port, upstreams, wait_for

INVOKE = "/custom/wine/api/model/invoke"


def shadow_route(percent: float = 100.0, target: str = "a") -> TrafficRoute:
    return TrafficRoute("wine-shadow", "/custom/wine", (WeightedTarget(target, 100),),
                        mirror="m", mirror_percent=percent)


@pytest.fixture
async def gateway():
    """``start(**config)`` -> (client, table, upstreams a and m, logged, mirror)."""
    cleanup = []

    async def start(**config):
        table = RouteTable()
        ups = await upstreams(table, "a", "m")
        table.set_routes([shadow_route()])
        logged = []
        app = create_app(GatewayConfig(**config), table, logged.append)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        cleanup.append((client, ups))
        return client, table, ups, logged, app[MIRROR]

    yield start
    for client, ups in cleanup:
        for up in ups.values():
            if up.gate is not None:
                up.gate.set()
        await client.close()
        for up in ups.values():
            await up.close()


def mirrored(logged):
    return [ex for ex in logged if ex.extra and ex.extra.get("mirror")]


async def test_primary_answers_while_the_mirror_hangs_then_the_copy_is_logged(gateway):
    client, _table, ups, logged, mirror = await gateway()
    ups["m"].gate = asyncio.Event()  # the mirror does not answer until the gate opens
    resp = await client.post(INVOKE + "?q=1", data=b'{"data": [[1]]}',
                             headers={"Request-ID": "shadow-1", "Authorization": "Bearer x"})
    assert resp.status == 200 and (await resp.json())["served_by"] == "a"
    assert resp.headers["x-mlgate-target"] == "a"
    await wait_for(lambda: ups["m"].seen, "the copy to reach the mirror")
    assert mirror.in_flight == 1 and mirrored(logged) == []
    path, headers, body = ups["m"].seen[0]
    assert (path, body, headers["request-id"]) == ("/api/model/invoke?q=1", b'{"data": [[1]]}',
                                                   "shadow-1")
    assert "Authorization" not in headers
    ups["m"].gate.set()
    [copy] = await wait_for(lambda: mirrored(logged), "the mirror's record")
    [primary] = [ex for ex in logged if ex is not copy]
    assert (copy.request_id, copy.model_name, copy.status) == ("shadow-1", "model-m", 200)
    assert copy.extra == {"route": "wine-shadow", "target": "m", "mirror": True}
    assert orjson.loads(copy.response_body) == {"served_by": "m"}
    assert (primary.request_id, primary.model_name) == ("shadow-1", "model-a")
    assert mirror.stats.as_dict() == {"copied": 1, "dropped": 0, "answered": 1, "failed": 0,
                                      "shed": 0}


async def test_copies_in_flight_are_bounded_and_the_rest_dropped_and_counted(gateway):
    client, _table, ups, logged, mirror = await gateway(mirror_max_in_flight=2)
    ups["m"].gate = asyncio.Event()
    for _ in range(5):
        assert (await client.post(INVOKE, data=b"{}")).status == 200
    assert (mirror.stats.copied, mirror.stats.dropped, mirror.in_flight) == (2, 3, 2)
    ups["m"].gate.set()
    await wait_for(lambda: len(mirrored(logged)) == 2, "two mirror records")
    assert mirror.in_flight == 0
    assert (await client.post(INVOKE, data=b"{}")).status == 200  # room again
    assert mirror.stats.copied == 3


async def test_a_mirror_that_cannot_be_reached_never_fails_the_caller(gateway):
    client, table, _ups, logged, mirror = await gateway()
    table.set_replicas("m", [("127.0.0.1", free_port())])
    resp = await client.post(INVOKE, data=b"{}", headers={"Request-ID": "shadow-2"})
    assert resp.status == 200
    [copy] = await wait_for(lambda: mirrored(logged), "the failed copy's record")
    assert (copy.request_id, copy.model_name, copy.status) == ("shadow-2", "model-m", 502)
    assert b"upstream_connect_failed" in copy.response_body
    assert mirror.stats.failed == 1


async def test_mirror_percentage_and_no_copy_to_itself(gateway):
    client, table, ups, _logged, mirror = await gateway()
    table.set_routes([shadow_route(percent=0)])
    for _ in range(20):
        await client.post(INVOKE, data=b"{}")
    table.set_routes([shadow_route(target="m")])  # the mirror is the target: nothing to copy
    for _ in range(5):
        assert (await client.post(INVOKE, data=b"{}")).headers["x-mlgate-target"] == "m"
    assert mirror.stats.copied == 0 and len(ups["m"].seen) == 5


async def test_close_cancels_copies_that_do_not_finish(gateway):
    client, _table, ups, _logged, mirror = await gateway()
    ups["m"].gate = asyncio.Event()
    await client.post(INVOKE, data=b"{}")
    await wait_for(lambda: ups["m"].seen, "the copy to reach the mirror")
    await mirror.close(timeout=0.05)
    assert mirror.in_flight == 0
