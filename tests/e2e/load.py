"""An open-loop load generator for the overload tests (what ``bench/openloop.c`` does, in Python).

Requests are due on a fixed clock (``rate`` a second) whether or not earlier ones were
answered; each latency is measured from the moment its request was *due*, so a gateway
that stalls shows it instead of slowing the sender down. Plain HTTP/1.1 on kept-alive
connections (at most ``connections`` open: a request due while all are busy waits, and
that wait counts). Bounded: ``rate * seconds`` requests to 127.0.0.1, then every
connection is closed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlparse


@dataclass
class Outcome:
    status: int
    latency: float
    headers: dict[str, str]


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def statuses(self) -> Counter[int]:
        return Counter(o.status for o in self.outcomes)

    def latencies(self, status: int) -> list[float]:
        return sorted(o.latency for o in self.outcomes if o.status == status)


def percentile(values: list[float], pct: float) -> float:
    """Nearest rank (``values`` sorted)."""
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, math.ceil(pct / 100 * len(values)) - 1))]


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def exchange(self, request: bytes) -> tuple[int, dict[str, str]]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.writer.close()
            raise ConnectionResetError("closed by the server")
        return status, headers


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[str, int, bytes]:
    """Host, port and the bytes of ``POST url`` with a JSON ``body``."""
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (f"POST {parsed.path} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
               ).encode() + body
    return host, port, request


async def drive(url: str, body: bytes, headers: dict[str, str], rate: float, seconds: float,
                connections: int = 64) -> Run:
    """POST ``body`` to ``url`` ``rate`` times a second for ``seconds``."""
    host, port, request = _post(url, body, headers)
    idle: asyncio.Queue[_Connection | None] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(None)  # a slot: connect when first used
    run = Run()
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    total = int(rate * seconds)

    async def one(due: float) -> None:
        conn = await idle.get()
        try:
            if conn is None:
                conn = _Connection(*await asyncio.open_connection(host, port))
            status, got = await conn.exchange(request)
            run.outcomes.append(Outcome(status, loop.time() - due, got))
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            run.errors.append(f"{type(exc).__name__}: {exc}")
            if conn is not None:
                conn.writer.close()
            conn = None
        finally:
            idle.put_nowait(conn)

    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    run.seconds = loop.time() - start
    while not idle.empty():
        conn = idle.get_nowait()
        if conn is not None:
            conn.writer.close()
    return run


def drive_blocking(url: str, body: bytes, headers: dict[str, str], rate: float,
                   seconds: float, connections: int = 64) -> Run:
    return asyncio.run(drive(url, body, headers, rate, seconds, connections))


def sequential(url: str, body: bytes, headers: dict[str, str], count: int) -> Run:
    """``count`` requests one after another (an unloaded baseline)."""

    async def go() -> Run:
        run = Run()
        host, port, request = _post(url, body, headers)
        conn = _Connection(*await asyncio.open_connection(host, port))
        started = time.perf_counter()
        for _ in range(count):
            t = time.perf_counter()
            status, got = await conn.exchange(request)
            run.outcomes.append(Outcome(status, time.perf_counter() - t, got))
        run.seconds = time.perf_counter() - started
        conn.writer.close()
        return run

    return asyncio.run(go())
