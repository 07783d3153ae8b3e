"""The upstream pool's HTTP/1.1 connections against raw servers that answer byte for byte.

Each server is a real asyncio server on 127.0.0.1 that reads one request head (and its
Content-Length body) and writes a scripted answer, so framing cases (chunked, close-
delimited, interim 1xx, HEAD, 204, garbage) are exercised on real sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from gateway.errors import UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout
from gateway.http1 import ProtocolError, encode_request
from gateway.routing import Replica
from gateway.upstream import Timeouts, UpstreamPool

Script = Callable[[bytes], list[bytes] | None]


class RawServer:
    """Answers each request with the chunks ``script(request)`` returns (None: close)."""

    def __init__(self, script: Script, close_after: bool = False) -> None:
        self.script = script
        self.close_after = close_after
        self.requests: list[bytes] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length) if length else b""
                self.requests.append(head + body)
                chunks = self.script(head + body)
                if chunks is None:
                    break
                for chunk in chunks:
                    writer.write(chunk)
                    await writer.drain()
                    await asyncio.sleep(0.01)
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> Replica:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return Replica("127.0.0.1", self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


@pytest.fixture
async def pool():
    p = UpstreamPool(Timeouts(connect=1, read=0.5))
    await p.start()
    yield p
    await p.close()


def fixed(*chunks: bytes) -> Script:
    return lambda _req: list(chunks)


async def test_content_length_answer_and_keep_alive(pool):
    server = RawServer(fixed(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"X-Two: a\r\nX-Two: b\r\nContent-Length: 2\r\n\r\n{}"))
    async with server as replica:
        for _ in range(3):
            resp = await pool.send(replica, "POST", "/api/model/invoke?x=1",
                                   {"request-id": "r1"}, b'{"a": 1}')
            assert (resp.status, resp.body) == (200, b"{}")
            assert resp.headers.getall("X-Two") == ["a", "b"]
    assert server.connections == 1  # kept alive and reused
    first = server.requests[0]
    assert first.startswith(b"POST /api/model/invoke?x=1 HTTP/1.1\r\n")
    assert f"Host: {replica.address}\r\n".encode() in first
    assert b"request-id: r1\r\n" in first and b"Content-Length: 8\r\n" in first
    assert first.endswith(b'\r\n\r\n{"a": 1}')


async def test_chunked_answer_with_trailers(pool):
    answer = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
              b"5;ext=1\r\nhello\r\n", b"6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    server = RawServer(fixed(*answer))
    async with server as replica:
        for _ in range(2):
            resp = await pool.send(replica, "GET", "/", {}, b"")
            assert resp.body == b"hello world"
    assert server.connections == 1


async def test_body_delimited_by_close(pool):
    server = RawServer(fixed(b"HTTP/1.0 200 OK\r\n\r\nuntil ", b"the end"), close_after=True)
    async with server as replica:
        resp = await pool.send(replica, "GET", "/", {}, b"")
        assert resp.body == b"until the end"
        resp = await pool.send(replica, "GET", "/", {}, b"")  # a new connection
        assert resp.body == b"until the end"
    assert server.connections == 2


async def test_interim_answer_is_skipped_and_head_has_no_body(pool):
    def script(request: bytes) -> list[bytes]:
        if request.startswith(b"HEAD"):
            return [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"]
        if request.startswith(b"DELETE"):
            return [b"HTTP/1.1 204 No Content\r\n\r\n"]
        return [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\n"
                                                  b"\r\nx"]

    async with RawServer(script) as replica:
        assert (await pool.send(replica, "POST", "/", {"expect": "100-continue"}, b"z")).status \
            == 201
        head = await pool.send(replica, "HEAD", "/", {}, b"")
        assert (head.status, head.body, head.headers["Content-Length"]) == (200, b"", "100")
        assert (await pool.send(replica, "DELETE", "/x", {}, b"")).status == 204
        assert (await pool.send(replica, "POST", "/", {}, b"z")).status == 201


async def test_connection_close_header_is_honoured(pool):
    server = RawServer(fixed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
    async with server as replica:
        await pool.send(replica, "GET", "/", {}, b"")
        await pool.send(replica, "GET", "/", {}, b"")
    assert server.connections == 2


@pytest.mark.parametrize("answer", [
    b"SSH-2.0-OpenSSH\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n no-name\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
])
async def test_garbled_answers_are_protocol_errors(pool, answer):
    async with RawServer(fixed(answer)) as replica:
        with pytest.raises(UpstreamProtocolError):
            await pool.send(replica, "GET", "/", {}, b"")


async def test_closed_mid_answer_is_a_protocol_error(pool):
    server = RawServer(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
                       close_after=True)
    async with server as replica:
        with pytest.raises(UpstreamProtocolError, match="closed"):
            await pool.send(replica, "POST", "/", {}, b"{}")


async def test_silence_is_a_read_timeout_and_the_connection_is_not_reused(pool):
    calls = []

    def script(_request: bytes) -> list[bytes]:
        calls.append(1)
        if len(calls) == 1:
            return []  # never answers the first request
        return [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]

    server = RawServer(script)
    async with server as replica:
        with pytest.raises(UpstreamTimeout):
            await pool.send(replica, "GET", "/", {}, b"")
        assert (await pool.send(replica, "GET", "/", {}, b"")).status == 200
    assert server.connections == 2


async def test_refused_connection_is_a_connect_error(pool):
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(UpstreamConnectError, match="cannot connect"):
        await pool.send(Replica("127.0.0.1", port), "GET", "/", {}, b"")


async def test_a_kept_alive_connection_closed_by_the_replica_is_retried_for_get(pool):
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    server = RawServer(fixed(answer), close_after=True)  # closes after each answer, silently
    async with server as replica:
        assert (await pool.send(replica, "GET", "/", {}, b"")).body == b"ok"
        await asyncio.sleep(0.05)  # the close reaches the idle connection
        assert (await pool.send(replica, "GET", "/", {}, b"")).body == b"ok"


async def test_cancelling_a_request_never_returns_its_connection(pool):
    server = RawServer(lambda _r: [])  # never answers
    async with server as replica:
        task = asyncio.create_task(pool.send(replica, "GET", "/", {}, b""))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not any(pool._idle.values())
        assert pool._open == 0


def test_headers_cannot_smuggle_a_second_request():
    with pytest.raises(ProtocolError):
        encode_request("GET", "/", "h:1", [("x", "a\r\nGET /admin HTTP/1.1")], b"")
    with pytest.raises(ProtocolError):
        encode_request("GET", "/", "h:1", [("x", "a\nb")], b"")
    assert encode_request("GET", "/", "h:1", [("x", "é")], b"").endswith(
        "x: é\r\n\r\n".encode())


async def test_the_connection_limit_queues_requests(pool):
    limited = UpstreamPool(Timeouts(connect=1, read=2), limit=1)
    await limited.start()
    try:
        server = RawServer(fixed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
        async with server as replica:
            results = await asyncio.gather(*(limited.send(replica, "GET", "/", {}, b"")
                                             for _ in range(5)))
        assert [r.status for r in results] == [200] * 5
        assert server.connections == 1
    finally:
        await limited.close()


async def test_a_broken_exchange_retires_the_replicas_idle_connections(pool):
    """When one connection to a replica breaks mid-exchange (the process died), its idle
    siblings are not reused: a dead one would fail a request that cannot be resent."""
    answers = {"ok": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"}
    server = RawServer(lambda _r: [answers["ok"]] if answers else None)
    async with server as replica:
        results = await asyncio.gather(*(pool.send(replica, "POST", "/", {}, b"x")
                                         for _ in range(3)))
        assert [r.body for r in results] == [b"ok"] * 3 and server.connections == 3
        answers.clear()  # from now on the replica drops each request unanswered
        with pytest.raises(UpstreamProtocolError):
            await pool.send(replica, "POST", "/", {}, b"x")
        answers["ok"] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        assert (await pool.send(replica, "POST", "/", {}, b"x")).body == b"ok"
    assert server.connections == 4  # a new connection, not one of the two idle siblings
