"""The upstream transport: pooled kept-alive HTTP/1.1 connections, errors mapped at the boundary.

Requests go out over :class:`gateway.http1.Connection` (one request at a time per
connection, idle connections reused last-in first-out, closed after ``keepalive``
seconds idle). Its errors never leave this module; callers see the
``UpstreamError`` family from ``gateway.errors``. ``UpstreamConnectError`` is the
only one raised before the request could have reached the model, so it is the
only one a caller may retry on another replica. A kept-alive connection the
replica closed just as it was reused, before answering a byte, is retried once on
a new connection for idempotent methods (as aiohttp's client does).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from multidict import CIMultiDict

from .errors import UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout
from .http1 import Connection, Disconnected, ProtocolError, ReadTimeout, encode_request
from .routing import Replica

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds per phase; ``total`` None means bounded only by the phases."""

    connect: float = 2.0
    read: float = 60.0
    total: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"timeout {name} must be > 0, got {value}")


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: CIMultiDict[str]
    body: bytes


class UpstreamPool:
    """Connections to every replica; ``start`` inside the running loop, ``close`` at the end."""

    def __init__(self, timeouts: Timeouts | None = None, *, limit: int = 1000,
                 keepalive: float = 15.0) -> None:
        self.timeouts = timeouts or Timeouts()
        self._limit = limit
        self._keepalive = keepalive
        self._idle: dict[tuple[str, int], list[Connection]] = {}
        self._busy: set[Connection] = set()
        self._open = 0
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._sweeper = asyncio.create_task(self._sweep(), name="mlgate-upstream-sweeper")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        for conn in list(self._busy):
            conn.close()
        self._loop = None

    async def send(self, replica: Replica, method: str, path_qs: str,
                   headers: Mapping[str, str], body: bytes,
                   deadline: float | None = None) -> UpstreamResponse:
        """One exchange. ``deadline`` (monotonic seconds): the request's own; the exchange
        gets only the time left (``UpstreamTimeout`` with reason ``deadline_upstream``)."""
        assert self._loop is not None, "UpstreamPool.start() was not awaited"
        try:
            request = encode_request(method, path_qs, replica.address, headers.items(), body)
        except ProtocolError as exc:
            raise UpstreamProtocolError(
                f"cannot send to replica {replica.address}: {exc}") from None
        limit, by_deadline = self.timeouts.total, False
        if deadline is not None:
            left = deadline - time.monotonic()
            if limit is None or left < limit:
                limit, by_deadline = max(0.0, left), True
        if limit is None:
            return await self._send(replica, method, request)
        try:
            async with asyncio.timeout(limit):
                return await self._send(replica, method, request)
        except TimeoutError:
            if by_deadline:
                late = UpstreamTimeout(f"replica {replica.address} did not answer within the "
                                       "request's deadline")
                late.reason = "deadline_upstream"
                raise late from None
            raise UpstreamTimeout(f"replica {replica.address} did not answer within "
                                  f"{self.timeouts.total:g}s in total") from None

    async def _send(self, replica: Replica, method: str, request: bytes) -> UpstreamResponse:
        key = (replica.host, replica.port)
        conn, reused = await self._acquire(replica, key)
        while True:
            self._busy.add(conn)
            try:
                resp = await conn.send(request, method == "HEAD", self.timeouts.read)
            except Disconnected as exc:
                self._discard(conn)
                self._drop_idle(key)
                if reused and not exc.got_bytes and method in IDEMPOTENT:
                    reused = False
                    conn = await self._connect(replica)
                    continue
                raise UpstreamProtocolError(
                    f"replica {replica.address} closed the connection or sent a broken answer: "
                    f"{exc}") from None
            except ProtocolError as exc:
                self._discard(conn)
                self._drop_idle(key)
                raise UpstreamProtocolError(
                    f"replica {replica.address} closed the connection or sent a broken answer: "
                    f"{exc}") from None
            except ReadTimeout:
                self._discard(conn)
                raise UpstreamTimeout(f"replica {replica.address} did not answer within "
                                      f"{self.timeouts.read:g}s") from None
            except BaseException:  # cancelled: the connection is mid-exchange, never reuse it
                conn.abandon()
                self._discard(conn)
                raise
            self._busy.discard(conn)
            if resp.keep_alive and not conn.closed:
                conn.idle_since = self._loop.time()  # type: ignore[union-attr]
                self._idle.setdefault(key, []).append(conn)
                self._wake_one()
            else:
                conn.close()
                self._discard(conn)
            return UpstreamResponse(resp.status, CIMultiDict(resp.headers), resp.body)

    def _reuse(self, key: tuple[str, int]) -> Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        oldest_ok = self._loop.time() - self._keepalive  # type: ignore[union-attr]
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.idle_since >= oldest_ok:
                return conn
            conn.close()
            self._open -= 1
        return None

    async def _acquire(self, replica: Replica,
                       key: tuple[str, int]) -> tuple[Connection, bool]:
        """An idle connection to ``replica`` (True), or a new one (False) within ``limit``:
        at the limit, an idle connection to another replica is closed, else the request
        waits for one to be released."""
        while True:
            conn = self._reuse(key)
            if conn is not None:
                return conn, True
            if self._open < self._limit or self._close_one_idle():
                return await self._connect(replica), False
            waiter = self._loop.create_future()  # type: ignore[union-attr]
            self._slot_waiters.append(waiter)
            await waiter

    async def _connect(self, replica: Replica) -> Connection:
        self._open += 1
        try:
            async with asyncio.timeout(self.timeouts.connect):
                _, conn = await self._loop.create_connection(  # type: ignore[union-attr]
                    Connection, replica.host, replica.port)
        except TimeoutError:
            self._open -= 1
            self._wake_one()
            raise UpstreamConnectError(
                f"connecting to replica {replica.address} timed out") from None
        except OSError as exc:
            self._open -= 1
            self._wake_one()
            raise UpstreamConnectError(
                f"cannot connect to replica {replica.address}: {exc.strerror or exc}") from None
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise
        return conn

    def _discard(self, conn: Connection) -> None:
        self._busy.discard(conn)
        conn.close()
        self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _drop_idle(self, key: tuple[str, int]) -> None:
        """A connection to this replica broke mid-exchange: its idle siblings most likely
        did too (the process died, or closed them all), so none is reused; the next
        request opens a new connection, whose failure to connect can move to another
        replica, where a reused dead one would fail a request that cannot be resent."""
        for conn in self._idle.pop(key, ()):
            conn.close()
            self._open -= 1
        self._wake_one()

    def _close_one_idle(self) -> bool:
        for conns in self._idle.values():
            if conns:
                conns.pop(0).close()
                self._open -= 1
                return True
        return False

    async def _sweep(self) -> None:
        """Close connections idle longer than ``keepalive`` (and forget closed ones)."""
        while True:
            await asyncio.sleep(max(1.0, self._keepalive / 2))
            oldest_ok = self._loop.time() - self._keepalive  # type: ignore[union-attr]
            for key, conns in list(self._idle.items()):
                keep = [c for c in conns if not c.closed and c.idle_since >= oldest_ok]
                for conn in conns:
                    if conn not in keep:
                        conn.close()
                        self._open -= 1
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
            self._wake_one()
