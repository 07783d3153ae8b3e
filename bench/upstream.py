"""The benchmark's trivial predictor: raw asyncio (uvloop) HTTP/1.1 answering a fixed JSON.

    .venv/bin/python bench/upstream.py --port 9001 [--host 127.0.0.1]

Every request (any method, any path) gets the same 200 answer with the headers a
real predictor sends (``Content-Type``, ``Model-Name``, ``Model-Version``), on a
kept-alive connection. No framework and no JSON work: a request costs a few
microseconds of Python, so a gateway in front of it, not this server, is what a
throughput run measures. Prints ``upstream ready on http://HOST:PORT``.

``--delay 0.05 --concurrency 1`` makes it a slow model instead (the overload scenario):
each answer takes 50 ms and one call is served at a time, in arrival order, as by a
predictor whose model runs on its event loop: 20 calls a second, the rest queue.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import uvloop

BODY = b'{"prediction": [5.72], "columns": ["quality"]}'
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nModel-Name: fast\r\n"
            b"Model-Version: 1\r\nContent-Length: " + str(len(BODY)).encode() + b"\r\n\r\n"
            + BODY)


class FixedAnswer(asyncio.Protocol):
    """Pipelining-safe: answers once per complete request (head + Content-Length body)."""

    delay = 0.0
    slots: asyncio.Semaphore | None = None  # with a delay: calls served at once

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.previous: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        answers = 0
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buf[:end]
            length = 0
            at = head.lower().find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17:stop if stop >= 0 else len(head)])
            if len(buf) < end + 4 + length:
                break
            buf = buf[end + 4 + length:]
            answers += 1
        self.buf = buf
        if answers and self.transport is not None:
            if self.delay:
                for _ in range(answers):
                    self.previous = asyncio.ensure_future(self.slow_answer(self.previous))
            else:
                self.transport.write(RESPONSE * answers)

    async def slow_answer(self, before: asyncio.Task[None] | None) -> None:
        assert self.slots is not None
        async with self.slots:
            await asyncio.sleep(self.delay)
        if before is not None:
            await before  # answers leave a connection in request order
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(RESPONSE)


async def serve(host: str, port: int, delay: float = 0.0, concurrency: int = 1) -> None:
    if delay:
        FixedAnswer.delay, FixedAnswer.slots = delay, asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FixedAnswer, host, port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = server.sockets[0].getsockname()
    print(f"upstream ready on http://{bound[0]}:{bound[1]}", flush=True)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds each answer takes (a slow model)")
    parser.add_argument("--concurrency", type=int, default=1,
                        help="with --delay: calls served at once (the rest queue)")
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, args.delay, args.concurrency))


if __name__ == "__main__":
    main()
