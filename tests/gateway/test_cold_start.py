"""A request to a deployment with no replica is held until one comes (the cold start)."""

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import GatewayConfig, RouteTable, create_app


async def upstream_app() -> web.Application:
    app = web.Application()

    async def invoke(_request):
        return web.json_response({"prediction": [1.0]})

    app.router.add_post("/api/model/invoke", invoke)
    return app


@pytest.fixture
async def gateway():
    table = RouteTable()
    client = TestClient(TestServer(create_app(GatewayConfig(), table, lambda e: None),
                                   host="127.0.0.1"))
    await client.start_server()
    yield table, client
    await client.close()


async def test_held_request_is_served_once_a_replica_is_published(gateway):
    table, client = gateway
    upstream = TestServer(await upstream_app(), host="127.0.0.1")
    await upstream.start_server()
    dep = table.upsert("wine", "wine", "1.0")
    dep.cold_start_timeout = 60
    asked = asyncio.Event()

    def on_demand(dep_id):
        assert dep_id == "wine"
        asked.set()

    dep.on_demand = on_demand
    request = asyncio.ensure_future(client.post("/model/wine/api/model/invoke", json={}))
    await asked.wait()
    assert not request.done() and dep.in_flight == 1
    table.set_replicas("wine", [("127.0.0.1", upstream.port)])
    resp = await request
    assert resp.status == 200 and (await resp.json()) == {"prediction": [1.0]}
    assert dep.in_flight == 0 and dep.requests == 1
    await upstream.close()


async def test_no_replica_in_time_answers_503_with_retry_after(gateway):
    table, client = gateway
    dep = table.upsert("wine", "wine", "1.0")
    dep.cold_start_timeout = 0.2
    resp = await client.post("/model/wine/api/model/invoke", json={})
    assert resp.status == 503 and resp.headers["Retry-After"]
    assert "none started within 0.2s" in (await resp.json())["message"]


async def test_unavailable_reason_ends_the_wait(gateway):
    table, client = gateway
    dep = table.upsert("wine", "wine", "1.0")
    dep.cold_start_timeout = 600
    dep.on_demand = lambda _id: table.set_unavailable("wine", "model cannot be loaded: boom")
    resp = await client.post("/model/wine/api/model/invoke", json={})
    body = await resp.json()
    assert resp.status == 503 and "model cannot be loaded: boom" in body["message"]


async def test_removed_deployment_ends_the_wait(gateway):
    table, client = gateway
    dep = table.upsert("wine", "wine", "1.0")
    dep.cold_start_timeout = 600
    dep.on_demand = lambda _id: asyncio.get_running_loop().call_soon(table.remove, "wine")
    resp = await client.post("/model/wine/api/model/invoke", json={})
    assert resp.status == 503 and "deleted" in (await resp.json())["message"]


async def test_without_cold_start_timeout_503_at_once(gateway):
    table, client = gateway
    table.upsert("wine", "wine", "1.0")
    resp = await client.post("/model/wine/api/model/invoke", json={})
    assert resp.status == 503 and "no ready replica" in (await resp.json())["message"]
