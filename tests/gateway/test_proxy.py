"""The gateway against real in-process upstream servers on 127.0.0.1."""

import asyncio
import socket

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import GatewayConfig, RouteTable, Timeouts, create_app

SEEN = web.AppKey("seen", list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def fake_predictor() -> web.Application:
    app = web.Application()
    app[SEEN] = []

    async def invoke(request):
        body = await request.read()
        app[SEEN].append((request.path_qs, dict(request.headers), body))
        return web.json_response({"prediction": [6.0], "columns": ["quality"]},
                                 headers={"Model-Name": "upstream-name", "Set-Cookie": "s=1"})

    async def slow(request):
        await asyncio.sleep(5)
        return web.Response(text="late")

    async def broken(request):
        request.transport.close()
        await asyncio.sleep(1)
        return web.Response(text="never")

    async def gzipped(request):
        return web.Response(body=b"\x1f\x8b-not-really", headers={"Content-Encoding": "gzip"})

    app.router.add_route("*", "/api/model/invoke", invoke)
    app.router.add_get("/slow", slow)
    app.router.add_get("/broken", broken)
    app.router.add_get("/gz", gzipped)
    return app


@pytest.fixture
async def stack():
    upstream = TestServer(await fake_predictor(), host="127.0.0.1")
    await upstream.start_server()
    table = RouteTable()
    table.upsert("wine", "wine", "1.0")
    table.set_replicas("wine", [("127.0.0.1", upstream.port)])
    logged = []
    app = create_app(GatewayConfig(timeouts=Timeouts(connect=1, read=0.5), max_body_bytes=4096),
                     table, logged.append)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, table, upstream, logged
    finally:
        await client.close()
        await upstream.close()


async def test_forward_answer_and_log(stack):
    client, _table, upstream, logged = stack
    resp = await client.post("/model/wine/api/model/invoke?a=1", data=b'{"data": [[1]]}',
                             headers={"Authorization": "Bearer t", "Request-ID": "abc-1"})
    assert resp.status == 200
    assert await resp.json() == {"prediction": [6.0], "columns": ["quality"]}
    assert resp.headers["request-id"] == "abc-1"
    assert resp.headers["model-name"] == "wine"
    assert resp.headers["model-version"] == "1.0"
    assert int(resp.headers["x-envoy-upstream-service-time"]) >= 0
    path, headers, body = upstream.app[SEEN][0]
    assert path == "/api/model/invoke?a=1" and body == b'{"data": [[1]]}'
    assert headers["request-id"] == "abc-1" and "Authorization" not in headers
    [ex] = logged
    assert ex.request_id == "abc-1" and ex.status == 200
    assert ex.uri == "/model/wine/api/model/invoke?a=1"
    assert ex.request_body == b'{"data": [[1]]}'
    assert ex.deployment_id == "wine" and 0 <= ex.upstream_seconds < 5


async def test_generated_request_id_is_uuid4(stack):
    client, *_ = stack
    resp = await client.post("/model/wine/api/model/invoke", data=b"{}")
    rid = resp.headers["request-id"]
    assert len(rid) == 36 and rid[14] == "4"


async def test_x_request_id_is_accepted(stack):
    client, *_ = stack
    resp = await client.post("/model/wine/api/model/invoke", data=b"{}",
                             headers={"X-Request-ID": "from-x"})
    assert resp.headers["request-id"] == "from-x"


@pytest.mark.parametrize("bad", ["a b", "x" * 200, "../../etc", "id\u00e9", "-lead"])
async def test_bad_request_id_is_400(stack, bad):
    client, *_ = stack
    resp = await client.post("/model/wine/api/model/invoke", data=b"{}",
                             headers={"Request-ID": bad.encode("utf-8").decode("latin-1")})
    assert resp.status == 400
    assert "Request-ID" in (await resp.json())["message"]


async def test_unknown_deployment_is_404_json(stack):
    client, *_ = stack
    resp = await client.post("/model/nope/api/model/invoke", data=b"{}")
    assert resp.status == 404
    body = await resp.json()
    assert body == {"message": "model deployment 'nope' not found", "reason": "not_found"}
    assert resp.headers["request-id"]


async def test_unknown_path_is_404_json(stack):
    client, *_ = stack
    resp = await client.get("/nothing/here")
    assert resp.status == 404 and (await resp.json())["reason"] == "not_found"


async def test_no_replica_is_503_with_retry_after(stack):
    client, table, *_ = stack
    table.set_replicas("wine", [])
    resp = await client.post("/model/wine/api/model/invoke", data=b"{}")
    assert resp.status == 503 and resp.headers["Retry-After"]
    assert "no ready replica" in (await resp.json())["message"]


async def test_refused_connection_is_502(stack):
    client, table, *_ = stack
    table.set_replicas("wine", [("127.0.0.1", free_port())])
    resp = await client.post("/model/wine/api/model/invoke", data=b"{}")
    assert resp.status == 502
    body = await resp.json()
    assert body["reason"] == "upstream_connect_failed" and "cannot connect" in body["message"]


@pytest.mark.parametrize(("replicas", "path", "status", "reason"), [
    ([], "/api/model/invoke", 503, "unavailable"),
    ("refused", "/api/model/invoke", 502, "upstream_connect_failed"),
    (None, "/slow", 504, "upstream_timeout"),
])
async def test_the_gateways_own_5xx_answers_for_a_deployment_are_logged(
        stack, replicas, path, status, reason):
    """Every request a deployment was asked to serve is in the records, so the feedback loop
    (and a canary's error rate) counts the 5xx answers the model never gave too."""
    client, table, _upstream, logged = stack
    if replicas == "refused":
        table.set_replicas("wine", [("127.0.0.1", free_port())])
    elif replicas is not None:
        table.set_replicas("wine", replicas)
    resp = await client.get(f"/model/wine{path}", headers={"Request-ID": "f-1"})
    assert resp.status == status
    [ex] = logged
    assert (ex.request_id, ex.status, ex.deployment_id) == ("f-1", status, "wine")
    assert dict(ex.response_headers)["request-id"] == "f-1"
    assert (await resp.json())["reason"] == reason
    assert ex.response_body == await resp.read()


async def test_connect_failure_retries_another_replica(stack):
    client, table, upstream, _ = stack
    table.set_replicas("wine", [("127.0.0.1", free_port()), ("127.0.0.1", upstream.port)])
    for _ in range(4):
        resp = await client.post("/model/wine/api/model/invoke", data=b"{}")
        assert resp.status == 200


async def test_read_timeout_is_504(stack):
    client, *_ = stack
    resp = await client.get("/model/wine/slow")
    assert resp.status == 504
    assert (await resp.json())["reason"] == "upstream_timeout"


async def test_connection_closed_mid_request_is_502(stack):
    client, *_ = stack
    resp = await client.get("/model/wine/broken")
    assert resp.status == 502
    assert (await resp.json())["reason"] == "upstream_protocol_error"


async def test_body_over_limit_is_413_json(stack):
    client, *_ = stack
    resp = await client.post("/model/wine/api/model/invoke", data=b"x" * 10000)
    assert resp.status == 413
    assert "message" in await resp.json()


async def test_encoded_answers_pass_through_untouched(stack):
    client, *_ = stack
    resp = await client.get("/model/wine/gz", auto_decompress=False)
    assert resp.headers["Content-Encoding"] == "gzip"
    assert await resp.read() == b"\x1f\x8b-not-really"


async def test_set_cookie_from_model_is_kept_for_caller(stack):
    client, *_ = stack
    resp = await client.post("/model/wine/api/model/invoke", data=b"{}")
    assert resp.headers["Set-Cookie"] == "s=1"


async def test_health(stack):
    client, *_ = stack
    resp = await client.get("/health")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}


async def test_documents_are_answered_by_the_gateway_and_logged(stack):
    client, table, upstream, logged = stack
    table.set_documents("wine", {"/api/model/info": b'{"openapi": "3.0.3"}'})
    resp = await client.get("/model/wine/api/model/info?x=1", headers={"Request-ID": "doc-1"})
    assert resp.status == 200
    assert await resp.json() == {"openapi": "3.0.3"}
    assert resp.headers["request-id"] == "doc-1" and resp.headers["model-name"] == "wine"
    assert upstream.app[SEEN] == []
    assert logged[-1].request_id == "doc-1" and logged[-1].response_body == b'{"openapi": "3.0.3"}'
    # other methods and paths still go to the replica
    resp = await client.post("/model/wine/api/model/invoke", data=b"{}")
    assert resp.status == 200 and len(upstream.app[SEEN]) == 1


async def test_a_gzip_request_is_forwarded_decoded_and_marked_for_storage(stack):
    import gzip

    client, _table, upstream, logged = stack
    resp = await client.post("/model/wine/api/model/invoke", data=gzip.compress(b'{"data": [[2]]}'),
                             headers={"Content-Encoding": "gzip"})
    assert resp.status == 200
    _path, headers, body = upstream.app[SEEN][-1]
    assert body == b'{"data": [[2]]}'
    assert "content-encoding" not in {k.lower() for k in headers}
    assert logged[-1].extra == {"request_content_decoded": "gzip"}
