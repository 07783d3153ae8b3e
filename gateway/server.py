"""The gateway's HTTP server: a protocol-level data plane with aiohttp behind it, one port.

Why: a profile of the fully featured gateway put most of its CPU per proxied call in
aiohttp's server machinery (request and response objects, stream reader and writer,
the per-connection task loop), not in mlgate's filters. This server parses with
llhttp (``httptools``), builds one small :class:`~gateway.fast_request.FastRequest`
per request, runs the gateway's filter chain (:mod:`gateway.filters`) over the
data plane's handlers and writes each answer with one ``write``.

One listener, one set of behaviours. :class:`GatewayRunner` is aiohttp's
``AppRunner`` whose protocol is :class:`HttpProtocol`, so sites (``TCPSite`` with
``reuse_port``, an ``ssl_context`` for TLS), start-up, graceful shutdown and the
app's cleanup stay aiohttp's. Per request, from the request line and headers:

* the paths of :class:`~gateway.dataplane.DataPlane` (``/model/...``,
  ``/custom/...``, feedback, ``/health``) are answered here, through the chain;
* everything else — management API, pages, metrics, and the rare request that
  needs aiohttp's machinery (a ``Content-Encoding`` aiohttp decodes,
  ``Expect: 100-continue``, ``Upgrade``, a path with escapes) — is handed, in
  process, to an aiohttp ``RequestHandler`` attached to the connection through an
  in-memory transport (:class:`Relay`): the request line and headers as parsed,
  the body as it arrives. aiohttp answers it through the same chain (its
  middlewares are the same list). A connection may mix both kinds; answers
  leave in request order (pipelining included) because a connection serves one
  request at a time.

Limits are the ones aiohttp applies (``server_settings``): header count and line
size (a plain-text 400, logged as one line without the offending bytes, then the
connection closes), the request line's size, and the idle timeout, which also
bounds how long a client may take to send a request's head (slowloris). A body
larger than the gateway's ``max_body_bytes`` is refused (413) and not buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from asyncio import constants as asyncio_constants
from asyncio import transports
from collections import deque
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser
from multidict import CIMultiDict, CIMultiDictProxy

from .dataplane import DataPlane
from .errors import log as gateway_log
from .fast_request import FastRequest
from .filters import Answer, answer_json
from .headers import SERVER_DECODED
from .wire import HeaderInjection, encode_answer

log = logging.getLogger("mlgate.gateway.server")
DATA_PLANE = web.AppKey("mlgate_data_plane", DataPlane)
MAX_QUEUED = 16
"""Pipelined requests parsed ahead of the one being answered; beyond, reading pauses."""


class _Refused(Exception):
    """A request the server refuses before any handler runs: a plain-text 400."""


class _Relayed:
    """A request aiohttp answers: its head as bytes, its body as it arrives."""

    __slots__ = ("answered", "chunked", "complete", "head", "keep_alive", "pending", "relay")

    def __init__(self, head: bytes, chunked: bool) -> None:
        self.head = head
        self.chunked = chunked
        self.pending: list[bytes] = [head]
        self.relay: Relay | None = None
        self.complete = False
        self.answered = False
        self.keep_alive = True

    def feed(self, data: bytes) -> None:
        if self.chunked:
            data = b"%x\r\n%b\r\n" % (len(data), data)
        if self.relay is None:
            self.pending.append(data)
        else:
            self.relay.feed(data)

    def finish(self) -> None:
        if self.chunked:
            self.feed(b"")  # the last chunk: "0\r\n\r\n"
        self.complete = True

    def go(self, relay: Relay) -> None:
        self.relay = relay
        for data in self.pending:
            relay.feed(data)
        self.pending = []


class _Discard:
    """A request that arrived after the connection stopped taking new ones."""

    def feed(self, data: bytes) -> None:
        pass

    def finish(self) -> None:
        pass


_DISCARD = _Discard()


class _Refusal:
    """A place in the answer order for a 400 (the request could not be parsed)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class HttpProtocol(asyncio.Protocol):
    """One client connection (module docstring)."""

    def __init__(self, server: FastServer) -> None:
        self.server = server
        self.plane = server.plane
        self.loop = server.loop
        self.parser = HttpRequestParser(self)
        self._max_field = server.max_field_size - 2  # name + ": " + value
        self._max_raw = 2 * server.max_headers
        self.transport: asyncio.Transport | None = None
        self.remote: str | None = None
        self.sockname: Any = None
        self.scheme = "http"
        self.closed = False
        self._url = b""
        self._raw: list[bytes] = []
        self._headers: list[tuple[str, str]] = []
        self._parsing: FastRequest | _Relayed | None = None
        self._active: FastRequest | _Relayed | _Refusal | None = None
        self._queue: deque[FastRequest | _Relayed | _Refusal] = deque()
        self._relay: Relay | None = None
        self._stopped = False  # no new request is taken from this connection
        self._dead = False  # the parser cannot go on (bad input, an upgrade): read nothing more
        self._paused: set[str] = set()
        self._idle_since = 0.0
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.remote = str(peer[0]) if isinstance(peer, list | tuple) else (
            str(peer) if peer is not None else None)
        self.sockname = transport.get_extra_info("sockname")
        if transport.get_extra_info("sslcontext") is not None:
            self.scheme = "https"
        self._idle_since = self.loop.time()
        self._timer = self.loop.call_later(self.server.idle_timeout, self._check_idle)
        self.server.connections_add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for msg in (self._parsing, self._active, *self._queue):
            if type(msg) is FastRequest:
                msg.fail()
        self._queue.clear()
        if self._relay is not None:
            self._relay.lost(exc)
            self._relay = None
        self.server.connections_remove(self)

    def data_received(self, data: bytes) -> None:
        if self._dead:
            return
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade:
            self._dead = self._stopped = True  # nothing here upgrades: it ends after the answer
        except HttpParserError as exc:
            self._dead = True
            cause = exc.__context__
            reason = str(cause) if isinstance(cause, _Refused) else (str(exc) or "bad request")
            self._refuse(reason)

    def pause_writing(self) -> None:
        if self._relay is not None:
            self._relay.pause_writing()

    def resume_writing(self) -> None:
        if self._relay is not None:
            self._relay.resume_writing()

    def eof_received(self) -> bool | None:
        self._stopped = True
        active = self._active
        if type(active) is FastRequest and active.interruptible:
            active.fail()  # it was only waiting for a replica: a client that hung up is gone
        parsing, self._parsing = self._parsing, None
        if parsing is not None and parsing is not _DISCARD:  # its body can no longer arrive
            if type(parsing) is FastRequest:
                parsing.fail()
            return None  # close: connection_lost follows
        if self._active is None and not self._queue:
            return None  # nothing to answer: let the transport close
        return True  # answer what is in flight, then close

    # -- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._raw: list[bytes] = []

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.server.max_line_size:
            raise _Refused(f"the request line is longer than {self.server.max_line_size} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        raw = self._raw
        raw += (name, value)
        if len(name) + len(value) > self._max_field or len(raw) > self._max_raw:
            if len(raw) > self._max_raw:
                raise _Refused(f"more than {self.server.max_headers} headers")
            raise _Refused(f"a header line is longer than {self.server.max_field_size} bytes")

    def on_headers_complete(self) -> None:
        parser = self.parser
        method = parser.get_method().decode("ascii", "replace")
        target = self._url.decode("utf-8", "surrogateescape")
        http10 = parser.get_http_version() == "1.0"
        # One decode for the whole block (llhttp refuses CR and LF inside names and values),
        # as aiohttp decodes them: UTF-8, undecodable bytes kept as surrogates.
        fields = b"\n".join(self._raw).decode("utf-8", "surrogateescape").split("\n") \
            if self._raw else []
        pairs = iter(fields)
        self._headers = list(zip(pairs, pairs, strict=True))
        headers = CIMultiDict(self._headers)
        chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        length = headers.get("Content-Length")
        encoding = headers.get("Content-Encoding")
        route = None
        if ("Expect" not in headers and "Upgrade" not in headers
                and (encoding is None or encoding.strip().lower() not in SERVER_DECODED)):
            route = self.plane.route(method, target)
        if self._stopped:  # shutting down or closing: the rest of this one is not read
            self._parsing = _DISCARD  # type: ignore[assignment]
            return
        msg: FastRequest | _Relayed
        if route is None:
            msg = _Relayed(self._head(method, target, http10), chunked)
        else:
            msg = FastRequest(
                method, target, target.partition("?")[0], CIMultiDictProxy(headers),
                int(length) if length is not None else None, chunked,
                parser.should_keep_alive(), http10, route, self.remote, self.scheme,
                self.sockname, self.plane.max_body)
        self._parsing = msg
        self._enqueue(msg)

    def on_body(self, body: bytes) -> None:
        self._parsing.feed(body)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        msg, self._parsing = self._parsing, None
        if msg is None or msg is _DISCARD:
            return
        msg.finish()
        if type(msg) is _Relayed and msg is self._active and msg.answered:
            self._relayed_done(msg)

    def _head(self, method: str, target: str, http10: bool) -> bytes:
        lines = [f"{method} {target} HTTP/{'1.0' if http10 else '1.1'}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in self._headers]
        lines.append("\r\n")
        return "".join(lines).encode("utf-8", "surrogateescape")

    # -- answering, one request at a time -------------------------------------------------------

    def _enqueue(self, msg: FastRequest | _Relayed | _Refusal) -> None:
        if self._active is None:
            self._start(msg)
            return
        self._queue.append(msg)
        if len(self._queue) >= MAX_QUEUED:
            self._pause("queue")

    def _start(self, msg: FastRequest | _Relayed | _Refusal) -> None:
        self._active = msg
        if type(msg) is FastRequest:
            msg.task = self.server.spawn(self._serve(msg))
        elif type(msg) is _Relayed:
            relay = self._relay
            if relay is None or relay.is_closing():
                relay = self._relay = Relay(self, self.server.inner())
            self.server.relayed += 1
            msg.go(relay)
            if msg.answered and msg.complete:  # answered while the bytes were fed
                self._relayed_done(msg)
        else:
            self._write_refusal(msg)

    async def _serve(self, request: FastRequest) -> None:
        try:
            response = await self.plane.handler(request)
        except asyncio.CancelledError:
            self._close()
            return
        except Exception:
            gateway_log.exception("unhandled error on %s %s", request.method, request.path)
            response = answer_json(500, {"message": "internal error in the gateway",
                                         "reason": "internal_error"})
        self._respond(request, response)

    def _respond(self, request: FastRequest, response: Any) -> None:
        if self.closed:
            return
        keep_alive = request.keep_alive and request.complete and not self._stopped \
            and not self.server.stopping
        try:
            if type(response) is Answer:
                data = encode_answer(response.status, response.headers, response.body,
                                     head=request.head, keep_alive=keep_alive,
                                     http10=request.http10)
            else:
                data = _encode_aiohttp(response, request, keep_alive)
        except HeaderInjection:
            gateway_log.error("refused to send an answer to %s %s: a header contains a line "
                              "break", request.method, request.path)
            data = encode_answer(500, _json_type(), b'{"message":"internal error in the '
                                 b'gateway","reason":"internal_error"}', head=request.head,
                                 keep_alive=keep_alive, http10=request.http10)
        self.transport.write(data)  # type: ignore[union-attr]
        if keep_alive:
            self._next()
        else:
            self._close()

    def _relayed_done(self, msg: _Relayed) -> None:
        if msg is not self._active or self.closed:
            return
        if not msg.keep_alive or self._stopped:
            self._close()
        else:
            self._next()

    def relay_answered(self, relay: Relay, keep_alive: bool) -> None:
        """aiohttp finished an answer on ``relay`` (its access logger tells)."""
        msg = self._active
        if type(msg) is not _Relayed or msg.relay is not relay:
            return
        msg.answered = True
        msg.keep_alive = keep_alive
        if msg.complete:  # after aiohttp's own bookkeeping of this answer
            self.loop.call_soon(self._relayed_done, msg)

    def relay_closed(self, relay: Relay) -> None:
        """aiohttp closed its side: an answer in progress ends the connection."""
        if relay is self._relay:
            self._relay = None
            self._resume("relay")  # a pause it asked for ends with it
        msg = self._active
        if type(msg) is _Relayed and msg.relay is relay and not (msg.answered and
                                                                  msg.keep_alive):
            self._close()

    def _next(self) -> None:
        self._active = None
        if self._queue:
            msg = self._queue.popleft()
            if len(self._queue) < MAX_QUEUED // 2:
                self._resume("queue")
            self._start(msg)
            return
        self._idle_since = self.loop.time()
        if self._stopped or self.server.stopping:
            self._close()

    def _refuse(self, reason: str) -> None:
        self._stopped = True
        log.warning("refused a malformed request from %s: %s", self.remote or "?", reason)
        parsing, self._parsing = self._parsing, None
        if parsing is not None:
            if parsing is self._active:
                self._close()  # mid-request: nothing sensible can be answered
                return
            with contextlib.suppress(ValueError):
                self._queue.remove(parsing)
        self._enqueue(_Refusal(reason))

    def _write_refusal(self, msg: _Refusal) -> None:
        body = f"400, message: {msg.reason}".encode()
        headers: CIMultiDict[str] = CIMultiDict({"Content-Type": "text/plain; charset=utf-8"})
        if self.transport is not None and not self.closed:
            self.transport.write(encode_answer(400, headers, body, head=False, keep_alive=False))
        self._close()

    # -- connection state -----------------------------------------------------------------------

    def _check_idle(self) -> None:
        """Close a connection idle (or still sending a request's head) for ``idle_timeout``."""
        self._timer = None
        if self.closed:
            return
        timeout = self.server.idle_timeout
        if self._active is None:
            left = self._idle_since + timeout - self.loop.time()
            if left <= 0:
                self._close()
                return
        else:
            left = timeout
        self._timer = self.loop.call_later(left, self._check_idle)

    def close_idle(self) -> None:
        """Shutdown: close now if nothing is in flight, else after the current answer."""
        self._stopped = True
        if self._active is None:
            self._close()

    def _close(self) -> None:
        self._stopped = True
        if self.transport is not None and not self.closed:
            self.transport.close()

    def _pause(self, why: str) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self._paused.add(why)

    def _resume(self, why: str) -> None:
        if why in self._paused:
            self._paused.discard(why)
            if not self._paused and self.transport is not None and not self.closed:
                self.transport.resume_reading()

    @property
    def busy(self) -> bool:
        return self._active is not None


def _json_type() -> CIMultiDict[str]:
    return CIMultiDict({"Content-Type": "application/json"})


def _encode_aiohttp(response: Any, request: FastRequest, keep_alive: bool) -> bytes:
    """A ``web.Response`` a handler of another package returned (bytes body only)."""
    body = response.body
    if isinstance(response, web.Response) and (body is None or isinstance(body, bytes)):
        return encode_answer(response.status, response.headers, body or b"",
                             head=request.head, keep_alive=keep_alive, http10=request.http10)
    gateway_log.error("a data plane handler for %s returned %r, not a complete answer",
                      request.path, type(response).__name__)
    return encode_answer(500, _json_type(), b'{"message":"internal error in the gateway",'
                         b'"reason":"internal_error"}', head=request.head,
                         keep_alive=keep_alive, http10=request.http10)


class Relay(transports._FlowControlMixin, asyncio.Transport):
    """The in-memory transport between a client connection and an aiohttp ``RequestHandler``:
    aiohttp reads what :meth:`feed` gives it and writes straight to the client.

    A flow-control transport with sendfile by fallback, so aiohttp's file answers (the
    pages) work on any event loop."""

    _sendfile_compatible = asyncio_constants._SendfileMode.FALLBACK

    def __init__(self, owner: HttpProtocol, protocol: asyncio.Protocol) -> None:
        super().__init__(loop=owner.loop)
        self.owner = owner
        self._protocol = protocol
        self._closing = False
        self._reading = True
        protocol.connection_made(self)

    def feed(self, data: bytes) -> None:
        if not self._closing and data:
            self._protocol.data_received(data)

    def lost(self, exc: BaseException | None) -> None:
        """The client connection is gone."""
        if not self._closing:
            self._closing = True
            self._protocol.connection_lost(exc)  # type: ignore[arg-type]

    # -- asyncio.Transport, as aiohttp uses it -------------------------------------------------

    def write(self, data: Any) -> None:
        transport = self.owner.transport
        if not self._closing and transport is not None and not self.owner.closed:
            transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def is_closing(self) -> bool:
        return self._closing or self.owner.closed

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self.owner.relay_closed(self)
        self.owner.loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        transport = self.owner.transport
        return transport.get_extra_info(name, default) if transport is not None else default

    def pause_reading(self) -> None:
        self._reading = False
        self.owner._pause("relay")

    def resume_reading(self) -> None:
        self._reading = True
        self.owner._resume("relay")

    def is_reading(self) -> bool:
        return self._reading

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def get_write_buffer_size(self) -> int:
        transport = self.owner.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def can_write_eof(self) -> bool:
        return False

    def pause_writing(self) -> None:
        self._protocol_paused = True
        with contextlib.suppress(Exception):
            self._protocol.pause_writing()  # type: ignore[attr-defined]

    def resume_writing(self) -> None:
        self._protocol_paused = False
        with contextlib.suppress(Exception):
            self._protocol.resume_writing()  # type: ignore[attr-defined]


class RelayAccess(AbstractAccessLogger):
    """Given to aiohttp as its access logger: called once each answer is written, it tells
    the client connection that the relayed request is done. Logs nothing (the gateway's
    observe filter writes the access log)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        relay = request.transport
        if isinstance(relay, Relay):
            relay.owner.relay_answered(relay, bool(response.keep_alive))

    @property
    def enabled(self) -> bool:
        return True


class FastServer:
    """What ``loop.create_server`` calls per connection; wraps aiohttp's ``web.Server`` (the
    relayed requests' handler) and takes its place in the runner."""

    def __init__(self, inner: web.Server, plane: DataPlane, *, max_headers: int,
                 max_field_size: int, max_line_size: int, idle_timeout: float) -> None:
        self.inner = inner
        self.plane = plane
        self.loop = asyncio.get_running_loop()
        self.max_headers = max_headers
        self.max_field_size = max_field_size
        self.max_line_size = max_line_size
        self.idle_timeout = idle_timeout
        self.stopping = False
        self.served = 0
        """Requests answered by the data plane here."""
        self.relayed = 0
        """Requests handed to aiohttp."""
        self._connections: set[HttpProtocol] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self) -> HttpProtocol:
        return HttpProtocol(self)

    def spawn(self, coro: Any) -> asyncio.Task[None]:
        self.served += 1
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def connections_add(self, conn: HttpProtocol) -> None:
        self._connections.add(conn)

    def connections_remove(self, conn: HttpProtocol) -> None:
        self._connections.discard(conn)

    @property
    def connections(self) -> list[Any]:
        return [*self._connections, *self.inner.connections]

    @property
    def requests_count(self) -> int:
        return self.inner.requests_count

    def pre_shutdown(self) -> None:
        """The listeners are closed: close idle connections, the others after their answer."""
        self.stopping = True
        for conn in list(self._connections):
            conn.close_idle()
        self.inner.pre_shutdown()

    async def shutdown(self, timeout: float | None = None) -> None:
        """Let requests in flight finish for up to ``timeout`` seconds, then cancel them."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1)
        await self.inner.shutdown(timeout)
        for conn in list(self._connections):
            conn._close()


_relay_logger = logging.getLogger("mlgate.gateway.relay")


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` for the gateway app: its sites listen with :class:`HttpProtocol`.
    Same arguments (``server_settings(limits)`` gives the limits); an app without a
    :class:`DataPlane` is served by aiohttp alone."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        self._limits = {
            "max_headers": kwargs.get("max_headers", 128),
            "max_field_size": kwargs.get("max_field_size", 8190),
            "max_line_size": kwargs.get("max_line_size", 8190),
            "idle_timeout": kwargs.get("keepalive_timeout", 75.0),
        }
        kwargs["access_log_class"] = RelayAccess
        kwargs["access_log"] = _relay_logger
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        inner = await super()._make_server()
        plane = self.app.get(DATA_PLANE)
        if plane is None:
            return inner
        plane.freeze(self.app.router)
        return FastServer(inner, plane, **self._limits)  # type: ignore[return-value]
