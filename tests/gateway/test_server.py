"""The gateway's listener (gateway.server): data plane here, the rest to aiohttp, one port.

Raw sockets where the wire matters (pipelining, framing, limits), an HTTP client elsewhere.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl

import httpx
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict

from gateway import GatewayConfig, GatewayRunner, Limits, RouteTable, create_app, server_settings
from gateway.dataplane import DataPlane
from gateway.wire import HeaderInjection, encode_answer

BODY = b'{"prediction": [1.5]}'


async def model_app() -> web.Application:
    app = web.Application()

    async def invoke(request: web.Request) -> web.Response:
        got = await request.read()
        assert got in (b"", b"{}")
        return web.Response(body=BODY, content_type="application/json",
                            headers={"Model-Name": "m"})

    app.router.add_route("*", "/{tail:.*}", invoke)
    return app


@pytest.fixture
async def gateway():
    upstream = TestServer(await model_app(), host="127.0.0.1")
    await upstream.start_server()
    table = RouteTable()
    table.upsert("wine", "wine", "1")
    table.set_replicas("wine", [("127.0.0.1", upstream.port)])
    logged = []
    app = create_app(GatewayConfig(max_body_bytes=4096, limits=Limits(idle_timeout=1.0)),
                     table, logged.append)
    runner = GatewayRunner(app, access_log=None, **server_settings(Limits(idle_timeout=1.0,
                                                                          max_headers=20)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield runner, port, logged
    await runner.cleanup()
    await upstream.close()


async def exchange(port: int, data: bytes, until: int = 1, timeout: float = 5.0) -> bytes:
    """Send raw bytes; read until ``until`` answers (by status lines) or the connection ends."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    out = b""
    try:
        async with asyncio.timeout(timeout):
            while out.count(b"HTTP/1.1 ") < until or not _complete(out):
                chunk = await reader.read(65536)
                if not chunk:
                    break
                out += chunk
    finally:
        writer.close()
    return out


def _complete(data: bytes) -> bool:
    head, sep, body = data.rpartition(b"HTTP/1.1 ")[2].partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            return len(body) >= int(value)
    return True


def invoke(path: str = "/model/wine/api/model/invoke", extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            f"Content-Length: 2\r\n{extra}\r\n{{}}").encode()


async def test_pipelined_requests_of_both_kinds_answer_in_order(gateway):
    runner, port, logged = gateway
    data = (invoke() + b"GET /metrics HTTP/1.1\r\nHost: gw\r\n\r\n" + invoke()
            + b"GET /health HTTP/1.1\r\nHost: gw\r\n\r\n")
    out = await exchange(port, data, until=4)
    statuses = [part[:3] for part in out.split(b"HTTP/1.1 ")[1:]]
    assert statuses == [b"200"] * 4
    bodies = out.split(b"HTTP/1.1 ")
    assert b"model-name: wine" in bodies[1].lower()
    assert b"mlgate_requests_total" in bodies[2]  # aiohttp answered /metrics in its turn
    assert b"model-name: wine" in bodies[3].lower()
    assert b'{"status":"ok"}' in bodies[4]
    assert runner.server.served == 3 and runner.server.relayed == 1
    assert len(logged) == 2


async def test_requests_aiohttp_must_parse_are_relayed_with_the_same_answer(gateway):
    runner, port, _ = gateway
    encoded = invoke("/model/w%69ne/api/model/invoke")  # escapes: aiohttp decodes the path
    out = await exchange(port, encoded)
    assert out.startswith(b"HTTP/1.1 404") and b'"reason":"not_found"' in out
    chunked = (b"POST /model/wine/api/model/invoke HTTP/1.1\r\nHost: gw\r\n"
               b"Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
               b"2\r\n{}\r\n0\r\n\r\n")
    out = await exchange(port, chunked, until=2)
    assert out.startswith(b"HTTP/1.1 100 Continue") and b"HTTP/1.1 200" in out and BODY in out
    assert runner.server.relayed == 2 and runner.server.served == 0


async def test_answers_carry_the_headers_aiohttp_would_write(gateway):
    _, port, _ = gateway
    out = await exchange(port, invoke())
    head = out.partition(b"\r\n\r\n")[0].decode().lower()
    assert "content-length: 21" in head and "date: " in head and "server: mlgate" in head
    assert "request-id: " in head and "x-envoy-upstream-service-time: " in head
    out = await exchange(port, b"HEAD /health HTTP/1.1\r\nHost: gw\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"\r\n\r\n")  # no body for HEAD
    out = await exchange(port, invoke(extra="Connection: close\r\n"))
    assert b"connection: close" in out.lower()


async def test_a_chunked_body_over_the_limit_is_413_without_buffering_it(gateway):
    _, port, _ = gateway
    chunk = b"x" * 1000
    data = (b"POST /model/wine/api/model/invoke HTTP/1.1\r\nHost: gw\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + (b"3e8\r\n" + chunk + b"\r\n") * 5
            + b"0\r\n\r\n")
    out = await exchange(port, data)
    assert out.startswith(b"HTTP/1.1 413") and b"request_entity_too_large" in out


async def test_malformed_and_oversized_heads_are_a_plain_400(gateway):
    _, port, _ = gateway
    out = await exchange(port, b"NOT HTTP AT ALL\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400") and b"text/plain" in out
    many = "".join(f"X-H{i}: v\r\n" for i in range(30))
    out = await exchange(port, f"GET /health HTTP/1.1\r\nHost: gw\r\n{many}\r\n".encode())
    assert out.startswith(b"HTTP/1.1 400") and b"more than 20 headers" in out


async def test_a_connection_idle_or_slow_to_send_its_head_is_closed(gateway):
    _, port, _ = gateway
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: gw\r\n")
    try:
        for _ in range(30):
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
            if await asyncio.wait_for(reader.read(1), 0.2) == b"":
                break
    except (TimeoutError, ConnectionError):
        pass
    else:
        pytest.fail("the slow head was kept open")
    finally:
        writer.close()


async def test_a_client_that_leaves_mid_body_cancels_its_request(gateway):
    runner, port, logged = gateway
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /model/wine/api/model/invoke HTTP/1.1\r\nHost: gw\r\n"
                 b"Content-Length: 100\r\n\r\n{")
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    await asyncio.sleep(0.2)
    assert not runner.server._tasks and not logged
    async with httpx.AsyncClient() as client:  # and the gateway goes on serving
        assert (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200


async def test_tls_is_terminated_by_the_same_listener(gateway, tmp_path):
    runner, _, _ = gateway
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    async with httpx.AsyncClient(verify=False) as client:
        resp = await client.post(f"https://127.0.0.1:{port}/model/wine/api/model/invoke",
                                 json={})
        assert resp.status_code == 200 and resp.json() == orjson.loads(BODY)
        status = await client.get(f"https://127.0.0.1:{port}/health")
        assert status.status_code == 200
    await site.stop()


def self_signed(tmp_path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


# -- pure parts ---------------------------------------------------------------------------------

async def handler(_request: object) -> None:
    return None


async def other(_request: object) -> None:
    return None


@pytest.mark.parametrize(("method", "target", "served"), [
    ("POST", "/model/wine/api/model/invoke", True),
    ("GET", "/model/wine", True),
    ("POST", "/model/wine/api/model/invoke?x=1", True),
    ("POST", "/model/Wine/api/model/invoke", False),  # not a deployment id: aiohttp's 404
    ("POST", "/model/w%69ne/api/model/invoke", False),
    ("POST", "/model/wine/../x", False),
    ("POST", "//model/wine/x", False),
    ("POST", "/model/wine/a\\b", False),
    ("POST", "http://gw/model/wine/x", False),
    ("GET", "/health", True),
    ("POST", "/health", False),  # aiohttp answers 405 with Allow
    ("GET", "/metrics", False),
])
def test_which_requests_the_data_plane_takes(method, target, served):
    from gateway.dataplane import ANY, is_model_path

    plane = DataPlane([], 1024)
    plane.add([ANY], "/model/", handler, prefix=True, accept=is_model_path)
    plane.add(["GET"], "/health", handler)
    assert (plane.route(method, target) is handler) is served


def test_a_fallback_leaves_other_routes_to_aiohttp():
    app = web.Application()
    app.router.add_get("/metrics", other)
    app.router.add_get("/status/{tail:.*}", other)
    app.router.add_route("*", "/{tail:.*}", handler, name="sidecar")
    plane = DataPlane([], 1024)
    plane.set_fallback(handler, "sidecar")
    plane.freeze(app.router)
    assert plane.route("POST", "/api/model/invoke") is handler
    assert plane.route("GET", "/metrics") is None
    assert plane.route("GET", "/status/x") is None
    assert plane.route("GET", "/metricsx") is handler


def test_wire_answers():
    headers = CIMultiDict({"Content-Type": "application/json", "Content-Length": "999"})
    data = encode_answer(200, headers, b"{}", head=False, keep_alive=True)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and body == b"{}"
    assert b"Content-Length: 2\r\n" in head and b"999" not in head
    assert b"Connection" not in head
    untyped = encode_answer(200, CIMultiDict(), b"x", head=False, keep_alive=False)
    assert b"application/octet-stream" in untyped and b"Connection: close" in untyped
    empty = encode_answer(204, CIMultiDict(), b"", head=False, keep_alive=True)
    assert b"Content-Length" not in empty
    assert encode_answer(200, CIMultiDict(), b"abc", head=True, keep_alive=True).endswith(
        b"\r\n\r\n")
    with pytest.raises(HeaderInjection):
        encode_answer(200, CIMultiDict({"X": "a\r\nSet-Cookie: x=1"}), b"", head=False,
                      keep_alive=True)


async def test_shutdown_finishes_requests_in_flight_and_closes_idle_connections():
    slow = web.Application()

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        await asyncio.sleep(0.5)
        return web.Response(body=BODY, content_type="application/json")

    slow.router.add_route("*", "/{tail:.*}", answer)
    upstream = TestServer(slow, host="127.0.0.1")
    await upstream.start_server()
    table = RouteTable()
    table.upsert("wine", "wine", "1")
    table.set_replicas("wine", [("127.0.0.1", upstream.port)])
    runner = GatewayRunner(create_app(GatewayConfig(), table, lambda _e: None),
                           access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    busy = asyncio.create_task(exchange(port, invoke()))
    await asyncio.sleep(0.1)
    await runner.cleanup()
    answer_bytes = await busy
    assert answer_bytes.startswith(b"HTTP/1.1 200") and BODY in answer_bytes
    assert b"connection: close" in answer_bytes.lower()
    assert await asyncio.wait_for(idle_reader.read(1), 2) == b""  # closed at shutdown
    idle_writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    await upstream.close()
