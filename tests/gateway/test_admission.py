"""Admission control against a real upstream held by the test: bounds, order, deadlines.

The upstream answers only when the test lets it (an event per call), so what is in
flight and what waits is known exactly; no timing is asserted beyond "at once" meaning
"before the held calls were let go".
"""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import Admission, GatewayConfig, RouteTable, create_app
from tests.gateway.traffic_upstreams import wait_for

GATES = web.AppKey("gates", list)
SEEN = web.AppKey("seen", list)
INVOKE = "/model/slow/api/model/invoke"


async def held_upstream() -> web.Application:
    """Each call waits for its own event (``app[GATES]``, in arrival order)."""
    app = web.Application()
    app[GATES] = []
    app[SEEN] = []

    async def invoke(request: web.Request) -> web.Response:
        body = await request.read()
        gate = asyncio.Event()
        app[GATES].append(gate)
        app[SEEN].append(body)
        await gate.wait()
        return web.json_response({"prediction": [body.decode()]})

    app.router.add_post("/api/model/invoke", invoke)
    return app


@pytest.fixture
async def stack():
    upstream = TestServer(await held_upstream(), host="127.0.0.1")
    await upstream.start_server()
    table = RouteTable()
    dep = table.upsert("slow", "slow", "1.0")
    dep.admission = Admission(max_in_flight_per_replica=2, max_waiting=2)
    table.set_replicas("slow", [("127.0.0.1", upstream.port)])
    logged: list = []
    client = TestClient(TestServer(create_app(GatewayConfig(), table, logged.append),
                                   host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, table, upstream, logged
    finally:
        for gate in upstream.app[GATES]:
            gate.set()
        await client.close()
        await upstream.close()


def call(client, n: int, **headers: str):
    return asyncio.ensure_future(client.post(INVOKE, data=str(n).encode(), headers=headers))


async def test_beyond_in_flight_and_waiting_bounds_503_at_once_then_served_in_order(stack):
    client, table, upstream, logged = stack
    dep = table.get("slow")
    calls = [call(client, n) for n in range(4)]  # 2 in flight, 2 waiting
    await wait_for(lambda: len(upstream.app[GATES]) == 2 and dep.gate.waiting == 2, "2 + 2")
    refused = await client.post(INVOKE, data=b"5")
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    body = await refused.json()
    assert body["reason"] == "overloaded" and "at capacity" in body["message"]
    assert not any(c.done() for c in calls)  # answered while the others were still held
    gates = upstream.app[GATES]
    gates[0].set()  # a slot frees: the first waiting request is sent, then the second
    await wait_for(lambda: len(gates) == 3, "the first waiting request sent")
    gates[1].set()
    await wait_for(lambda: len(gates) == 4, "the second waiting request sent")
    for gate in gates[2:]:
        gate.set()
    answers = [await c for c in calls]
    assert [a.status for a in answers] == [200] * 4
    assert upstream.app[SEEN] == [b"0", b"1", b"2", b"3"]
    assert dep.gate.waiting == 0 and dep.replicas[0].outstanding == 0
    assert not [e for e in logged if e.status == 503]  # a shed request is no record


async def test_a_waiting_request_whose_deadline_passes_gets_504_and_is_never_sent(stack):
    client, table, upstream, _logged = stack
    dep = table.get("slow")
    held = [call(client, n) for n in range(2)]
    await wait_for(lambda: len(upstream.app[GATES]) == 2, "two in flight")
    late = await client.post(INVOKE, data=b"late", headers={"x-mlgate-timeout-ms": "50"})
    assert late.status == 504
    assert (await late.json())["reason"] == "deadline_exceeded"
    assert dep.gate.waiting == 0
    for gate in upstream.app[GATES]:
        gate.set()
    assert [(await c).status for c in held] == [200, 200]
    await asyncio.sleep(0.05)
    assert b"late" not in upstream.app[SEEN]


async def test_the_deadline_bounds_the_upstream_call_too(stack):
    client, _table, upstream, _logged = stack
    resp = await client.post(INVOKE, data=b"x", headers={"x-mlgate-timeout-ms": "100"})
    assert resp.status == 504
    assert (await resp.json())["reason"] == "upstream_timeout"
    assert upstream.app[SEEN] == [b"x"]


@pytest.mark.parametrize("value", ["soon", "-5", "0", "1.5"])
async def test_a_malformed_deadline_is_a_400(stack, value):
    client, _table, _upstream, _logged = stack
    resp = await client.post(INVOKE, data=b"x", headers={"x-mlgate-timeout-ms": value})
    assert resp.status == 400 and "x-mlgate-timeout-ms" in (await resp.json())["message"]


async def test_a_deadline_longer_than_max_timeout_is_capped(stack):
    client, table, _upstream, _logged = stack
    table.get("slow").admission = Admission(max_in_flight_per_replica=1, max_waiting=5,
                                            max_timeout=0.1)
    resp = await client.post(INVOKE, data=b"x", headers={"x-mlgate-timeout-ms": "600000"})
    assert resp.status == 504  # the model holds it; 0.1 s is all the client may ask


async def test_the_deployment_timeout_applies_without_a_header(stack):
    client, table, upstream, _logged = stack
    table.get("slow").admission = Admission(max_in_flight_per_replica=1, max_waiting=5,
                                            timeout=0.1)
    held = call(client, 0, **{"x-mlgate-timeout-ms": "10000"})  # the client's own deadline
    await wait_for(lambda: len(upstream.app[GATES]) == 1, "one in flight")
    resp = await client.post(INVOKE, data=b"waits")  # the deployment's: 0.1 s
    assert resp.status == 504 and (await resp.json())["reason"] == "deadline_exceeded"
    upstream.app[GATES][0].set()
    assert (await held).status == 200


async def test_a_cold_start_holds_at_most_max_waiting(stack):
    client, table, upstream, _logged = stack
    dep = table.get("slow")
    table.set_replicas("slow", [])
    dep.cold_start_timeout = 30
    dep.admission = Admission(max_in_flight_per_replica=2, max_waiting=1)
    held = call(client, 0)
    await wait_for(lambda: dep.gate.held == 1, "one held for the cold start")
    refused = await client.post(INVOKE, data=b"1")
    assert refused.status == 503 and refused.headers["Retry-After"] == "5"
    assert "starting" in (await refused.json())["message"]
    timed = await client.post(INVOKE, data=b"1", headers={"x-mlgate-timeout-ms": "1"})
    assert timed.status == 503  # refused before waiting: the bound comes first
    table.set_replicas("slow", [("127.0.0.1", upstream.port)])
    await wait_for(lambda: upstream.app[GATES], "sent once a replica is there")
    upstream.app[GATES][0].set()
    assert (await held).status == 200


async def test_a_cold_start_longer_than_the_deadline_answers_504(stack):
    client, table, _upstream, _logged = stack
    dep = table.get("slow")
    table.set_replicas("slow", [])
    dep.cold_start_timeout = 30
    resp = await client.post(INVOKE, data=b"0", headers={"x-mlgate-timeout-ms": "50"})
    assert resp.status == 504 and (await resp.json())["reason"] == "deadline_exceeded"
    assert dep.gate.held == 0


async def test_a_client_that_goes_away_while_waiting_passes_its_turn_on(stack):
    client, table, upstream, _logged = stack
    dep = table.get("slow")
    held = [call(client, n) for n in range(2)]
    await wait_for(lambda: len(upstream.app[GATES]) == 2, "two in flight")
    _reader, gone = await asyncio.open_connection("127.0.0.1", client.port)
    gone.write(b"POST " + INVOKE.encode() + b" HTTP/1.1\r\nHost: gw\r\n"
               b"Content-Length: 1\r\n\r\n9")
    await wait_for(lambda: dep.gate.waiting == 1, "one waiting")
    waiting = call(client, 3)
    await wait_for(lambda: dep.gate.waiting == 2, "two waiting")
    gone.close()  # that client goes away
    await wait_for(lambda: dep.gate.waiting == 1, "the one that left is no longer waiting")
    upstream.app[GATES][0].set()
    await wait_for(lambda: len(upstream.app[GATES]) == 3, "the next waiting one is sent")
    assert upstream.app[SEEN][-1] == b"3"
    for gate in upstream.app[GATES]:
        gate.set()
    assert (await waiting).status == 200 and [(await c).status for c in held] == [200, 200]


async def test_shed_and_timed_out_requests_are_counted_with_their_reason(stack):
    client, table, upstream, _logged = stack
    dep = table.get("slow")
    dep.admission = Admission(max_in_flight_per_replica=1, max_waiting=0)
    held = call(client, 0)
    await wait_for(lambda: len(upstream.app[GATES]) == 1, "one in flight")
    for _ in range(3):
        assert (await client.post(INVOKE, data=b"1")).status == 503
    dep.admission = Admission(max_in_flight_per_replica=1, max_waiting=1)
    assert (await client.post(INVOKE, data=b"2",
                              headers={"x-mlgate-timeout-ms": "20"})).status == 504
    upstream.app[GATES][0].set()
    await held
    text = await (await client.get("/metrics")).text()
    assert 'mlgate_requests_shed_total{deployment="slow",reason="queue_full"} 3.0' in text
    assert ('mlgate_requests_timed_out_total{deployment="slow",reason="deadline_waiting"} 1.0'
            in text)
    assert 'mlgate_requests_total{code="503",deployment="slow"' in text
