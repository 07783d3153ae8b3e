"""A lean HTTP/1.1 client connection for the upstream pool: one request at a time, kept alive.

Why not ``aiohttp.ClientSession``: the gateway sends a body it already holds, to
an address it already knows, with headers it already filtered, and wants the
whole answer in memory. A profile of the fully featured gateway showed aiohttp's
client (request object, auto headers, payload writer, timers, response object,
stream reader) costing more Python per request than the rest of the hot path
together; this protocol does the same wire work with one ``write`` and a parser
that runs once per answer.

The parser understands what a replica may send: ``Content-Length``, ``chunked``
(with trailers, dropped), a body delimited by the connection closing, no body
for ``HEAD``/1xx/204/304, interim ``1xx`` answers (skipped), ``Connection: close``
and HTTP/1.0. Anything else it cannot frame is a :class:`ProtocolError`.

Errors are this module's own (:class:`ProtocolError`, :class:`Disconnected`);
``gateway.upstream`` maps them to the gateway's error tree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

_NO_BODY_STATUS = frozenset({204, 304})
_CRLF = b"\r\n"
_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 64 * 1024


class ProtocolError(Exception):
    """The replica sent something that is not a well-formed HTTP/1.1 answer."""


class ReadTimeout(Exception):
    """No byte of the answer came for ``read_timeout`` seconds."""


class Disconnected(Exception):
    """The connection closed before the answer was complete; ``got_bytes``: any part came."""

    def __init__(self, message: str, got_bytes: bool) -> None:
        super().__init__(message)
        self.got_bytes = got_bytes


def encode_request(method: str, target: str, host: str, headers: Iterable[tuple[str, str]],
                   body: bytes) -> bytes:
    """The request as bytes; ``ProtocolError`` if a header would break the framing."""
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n"]
    for name, value in headers:
        lines.append(f"{name}: {value}\r\n")
    if body or method not in ("GET", "HEAD", "OPTIONS", "DELETE"):
        lines.append(f"Content-Length: {len(body)}\r\n")
    lines.append("\r\n")
    head = "".join(lines)
    # Values come from aiohttp's parser (no CR/LF) or from the gateway itself; checked once
    # here so that no header can ever smuggle a second request upstream.
    breaks = len(lines) + 1  # the first item holds the request line and Host
    if head.count("\n") != breaks or head.count("\r") != breaks:
        raise ProtocolError("a header contains a line break")
    data = head.encode("utf-8", "surrogateescape")
    return data + body if body else data


class Response:
    __slots__ = ("body", "headers", "keep_alive", "status")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes,
                 keep_alive: bool) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive


class Connection(asyncio.Protocol):
    """One kept-alive connection. ``request`` may be awaited once at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Response] | None = None
        self._buf = bytearray()
        self._head_only = False
        self._got_bytes = False
        self._timer: asyncio.TimerHandle | None = None
        self._read_timeout = 0.0
        self._reset_parse()

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._status and self._length == -1 and not self._chunked:
            self._finish(keep_alive=False)  # a body delimited by the connection closing
            return
        self._waiter = None
        waiter.set_exception(Disconnected(
            "the replica closed the connection" + (f": {exc}" if exc else ""), self._got_bytes))

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # unsolicited bytes on an idle connection: it cannot be reused
            self.close()
            return
        self._got_bytes = True
        self._buf += data
        try:
            self._parse()
        except ProtocolError as exc:
            self._fail(exc)
            return
        if self._waiter is not None and self._timer is not None:  # more to come: re-arm
            self._timer.cancel()
            self._timer = self._waiter.get_loop().call_later(self._read_timeout, self._timed_out)

    # -- use ------------------------------------------------------------------------------------

    def send(self, request: bytes, head_only: bool,
             read_timeout: float) -> asyncio.Future[Response]:
        """Write ``request``; the future gets the answer, or ``ReadTimeout`` when no byte
        came for ``read_timeout`` seconds, or ``Disconnected``/``ProtocolError``."""
        assert self.transport is not None and self._waiter is None
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._head_only = head_only
        self._got_bytes = False
        self._read_timeout = read_timeout
        self._timer = loop.call_later(read_timeout, self._timed_out)
        self.transport.write(request)
        return self._waiter

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(ReadTimeout())

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abandon(self) -> None:
        """The caller gave up (timeout, cancellation): the connection's state is unknown."""
        self._waiter = None
        self._cancel_timer()
        self.close()

    # -- parsing --------------------------------------------------------------------------------

    def _reset_parse(self) -> None:
        self._status = 0
        self._headers: list[tuple[str, str]] = []
        self._length = -1  # body bytes still to read; -1: until close (when not chunked)
        self._chunked = False
        self._keep_alive = True
        self._body_at = 0
        self._chunks: list[bytes] = []
        self._chunk_left = -1  # bytes of the current chunk still to read; -1: at a size line
        self._trailers = False

    def _parse(self) -> None:
        while True:
            if not self._status:
                if not self._parse_head():
                    return
                if self._status < 200 and self._status != 101:
                    del self._buf[:self._body_at]
                    self._reset_parse()
                    continue  # an interim answer (100 Continue): the real one follows
            if self._chunked:
                if self._parse_chunks():
                    self._finish(self._keep_alive)
                return
            if self._length >= 0 and len(self._buf) - self._body_at >= self._length:
                self._finish(self._keep_alive)
            return

    def _parse_head(self) -> bool:
        end = self._buf.find(_HEAD_END)
        if end < 0:
            if len(self._buf) > _MAX_HEAD:
                raise ProtocolError("the answer's header is larger than 64 KiB")
            return False
        lines = bytes(self._buf[:end]).decode("utf-8", "surrogateescape").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if version not in ("HTTP/1.1", "HTTP/1.0") or len(code) != 3 or not code.isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(code)
        headers = self._headers
        length = -1
        keep_alive = version == "HTTP/1.1"
        chunked = False
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name[0] in " \t" or name[-1] in " \t":
                raise ProtocolError(f"malformed header line {line[:80]!r}")
            value = value.strip(" \t")
            key = name.lower()
            if key == "content-length":
                if not value.isdigit() or (length != -1 and int(value) != length):
                    raise ProtocolError(f"bad Content-Length {value[:40]!r}")
                length = int(value)
            elif key == "transfer-encoding":
                if value.lower().replace(" ", "").split(",")[-1] != "chunked":
                    raise ProtocolError(f"unsupported Transfer-Encoding {value[:40]!r}")
                chunked = True
            elif key == "connection":
                tokens = {t.strip().lower() for t in value.split(",")}
                if "close" in tokens:
                    keep_alive = False
                elif "keep-alive" in tokens:
                    keep_alive = True
            headers.append((name, value))
        if status < 200 or status in _NO_BODY_STATUS or self._head_only:
            length, chunked = 0, False
        elif chunked:
            length = -1
        elif length == -1:
            keep_alive = False  # delimited by close
        self._status = status
        self._length = length
        self._chunked = chunked
        self._keep_alive = keep_alive
        self._body_at = end + 4
        return True

    def _parse_chunks(self) -> bool:
        buf = self._buf
        at = self._body_at
        while True:
            if self._trailers:  # trailer lines (dropped) up to an empty line
                end = buf.find(_CRLF, at)
                if end < 0:
                    break
                empty = end == at
                at = end + 2
                if empty:
                    del buf[:at]
                    self._body_at = 0
                    return True
                continue
            if self._chunk_left == -1:
                end = buf.find(_CRLF, at)
                if end < 0:
                    if len(buf) - at > 1024:
                        raise ProtocolError("chunk size line too long")
                    break
                size = bytes(buf[at:end]).split(b";", 1)[0].strip()
                try:
                    self._chunk_left = int(size, 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size {size[:20]!r}") from None
                at = end + 2
                if self._chunk_left == 0:
                    self._trailers = True
                    self._chunk_left = -1
                continue
            if len(buf) - at < self._chunk_left + 2:
                break
            self._chunks.append(bytes(buf[at:at + self._chunk_left]))
            if buf[at + self._chunk_left:at + self._chunk_left + 2] != _CRLF:
                raise ProtocolError("chunk not followed by CRLF")
            at += self._chunk_left + 2
            self._chunk_left = -1
        del buf[:at]
        self._body_at = 0
        return False

    def _finish(self, keep_alive: bool) -> None:
        if self._chunked:
            body = b"".join(self._chunks)
        elif self._length >= 0:
            body = bytes(self._buf[self._body_at:self._body_at + self._length])
            del self._buf[:self._body_at + self._length]
        else:
            body = bytes(self._buf[self._body_at:])
            self._buf.clear()
        if self._buf:  # bytes beyond the answer: the replica is out of step, do not reuse
            keep_alive = False
        response = Response(self._status, self._headers, body, keep_alive)
        self._cancel_timer()
        waiter, self._waiter = self._waiter, None
        self._reset_parse()
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
