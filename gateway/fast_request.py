"""The fast server's request: the filter contract's subset of aiohttp's ``web.Request``.

A ``dict`` subclass, so per-request state (``request[KEY]``) costs what a dict costs;
everything else is a slot filled once by the protocol (:mod:`gateway.server`).
The body arrives through :meth:`FastRequest.feed` and :meth:`FastRequest.finish`;
:meth:`read` waits for it (the body filter bounds the wait with its deadline).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from aiohttp import web
from multidict import CIMultiDictProxy

try:  # the parser aiohttp's own request.cookies uses (RFC 6265, lenient names)
    from aiohttp._cookie_helpers import parse_cookie_header
except ImportError:  # pragma: no cover - older aiohttp
    parse_cookie_header = None

_EMPTY: Mapping[str, str] = MappingProxyType({})


class FastRequest(dict):
    __slots__ = ("_body", "_complete", "_lost", "_parts", "_size", "_too_large", "_waiter",
                 "body_exists", "content_length", "head", "headers", "http10",
                 "interruptible", "keep_alive", "max_body", "method", "path", "raw_path",
                 "remote", "route", "scheme", "sockname", "task")

    def __init__(self, method: str, raw_path: str, path: str, headers: CIMultiDictProxy[str],
                 content_length: int | None, chunked: bool, keep_alive: bool, http10: bool,
                 route: Any, remote: str | None, scheme: str, sockname: Any,
                 max_body: int) -> None:
        self.method = method
        self.raw_path = raw_path
        self.path = path
        self.headers = headers
        self.content_length = content_length
        self.body_exists = chunked or bool(content_length)
        self.keep_alive = keep_alive
        self.http10 = http10
        self.head = method == "HEAD"
        self.route = route
        self.remote = remote
        self.scheme = scheme
        self.sockname = sockname
        self.max_body = max_body
        self._parts: list[bytes] = []
        self._size = 0
        self._body: bytes | None = None
        self._complete = not self.body_exists
        self._too_large = False
        self._lost = False
        self._waiter: asyncio.Future[None] | None = None
        self.task: asyncio.Task[None] | None = None
        """The task answering this request (set by the server)."""
        self.interruptible = False
        """While true (the request waits for a replica: :func:`interruptible`), a client
        that goes away cancels it, so it leaves the queue at once."""

    def __hash__(self) -> int:  # a request is a key in the server's in-flight set
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other

    # -- what the protocol calls ---------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._too_large:
            return
        self._size += len(data)
        if self._size > self.max_body:
            self._too_large = True
            self._parts.clear()
            self._wake()
            return
        self._parts.append(data)

    def finish(self) -> None:
        self._complete = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def fail(self) -> None:
        """The client went away before the body was complete: a handler waiting for it, or
        asking for it later, is cancelled (the observe filter counts a 499)."""
        self._lost = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.cancel()
        if self.interruptible and self.task is not None:
            self.task.cancel()

    # -- the filter contract (gateway.filters) --------------------------------------------------

    @property
    def content(self) -> FastRequest:
        return self

    def is_eof(self) -> bool:
        return self._complete or self._too_large

    @property
    def complete(self) -> bool:
        """The whole request, body included, has been received."""
        return self._complete

    async def read(self) -> bytes:
        body = self._body
        if body is not None:
            return body
        while not self._complete and not self._too_large:
            if self._lost:
                raise asyncio.CancelledError("the client went away")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._too_large:
            raise web.HTTPRequestEntityTooLarge(self.max_body)
        parts = self._parts
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        self._body = body
        return body

    @property
    def host(self) -> str:
        host = self.headers.get("Host")
        if host is not None:
            return host
        sockname = self.sockname
        if isinstance(sockname, tuple):
            return f"[{sockname[0]}]" if len(sockname) == 4 else str(sockname[0])
        return str(sockname) if sockname else ""

    @property
    def cookies(self) -> Mapping[str, str]:
        raw = self.headers.get("Cookie", "")
        if not raw:
            return _EMPTY
        if parse_cookie_header is not None:
            return MappingProxyType({name: m.value for name, m in parse_cookie_header(raw)})
        from http.cookies import SimpleCookie  # pragma: no cover

        jar: SimpleCookie = SimpleCookie(raw)  # pragma: no cover
        return MappingProxyType({k: m.value for k, m in jar.items()})  # pragma: no cover

    def __repr__(self) -> str:
        return f"<FastRequest {self.method} {self.raw_path}>"


@contextlib.contextmanager
def interruptible(request: Any) -> Iterator[None]:
    """Within, the request holds nothing upstream: if its client goes away, cancel it now
    (the fast server's requests; aiohttp's go on until their deadline or their turn)."""
    if type(request) is not FastRequest:
        yield
        return
    if request._lost:
        raise asyncio.CancelledError("the client went away")
    request.interruptible = True
    try:
        yield
    finally:
        request.interruptible = False
