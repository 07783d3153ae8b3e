"""The benchmark's trivial predictor: raw asyncio (uvloop) HTTP/1.1 answering a fixed JSON.

    .venv/bin/python bench/upstream.py --port 9001 [--host 127.0.0.1]

Every request (any method, any path) gets the same 200 answer with the headers a
real predictor sends (``Content-Type``, ``Model-Name``, ``Model-Version``), on a
kept-alive connection. No framework and no JSON work: a request costs a few
microseconds of Python, so a gateway in front of it, not this server, is what a
throughput run measures. Prints ``upstream ready on http://HOST:PORT``.
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

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

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
            self.transport.write(RESPONSE * answers)


async def serve(host: str, port: int) -> None:
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
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
