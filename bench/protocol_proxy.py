"""The server floor: a pass-through proxy on mlgate's own HTTP server, with no feature at all.

    .venv/bin/python bench/protocol_proxy.py --upstream 127.0.0.1:9001 --port 9002 [--reuse-port]

The listener ``mlgate up`` uses (``gateway.GatewayRunner``: llhttp on uvloop, the
answer written in one ``write``) and the upstream client it uses
(``gateway.UpstreamPool``), with an empty filter chain and one handler that forwards
every request as it came: no authentication, Request-ID, limits, metrics, logging,
records or routing. So "mlgate / this" is what mlgate's features cost, and
"this / nginx" what is left of a Python process per request. Prints
``proxy ready on http://HOST:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import uvloop
from aiohttp import web
from multidict import CIMultiDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway import Answer, GatewayRunner, Replica, UpstreamPool
from gateway.dataplane import DataPlane
from gateway.filters import answer_adapter
from gateway.server import DATA_PLANE

HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                        "host"})


def build_app(upstream: Replica, pool: UpstreamPool) -> web.Application:
    async def forward(request: web.Request) -> Answer:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        up = await pool.send(upstream, request.method, request.raw_path, headers, body)
        return Answer(up.status, CIMultiDict(
            (k, v) for k, v in up.headers.items() if k.lower() not in HOP_BY_HOP), up.body)

    app = web.Application(middlewares=[answer_adapter])
    app.router.add_route("*", "/{tail:.*}", forward, name="all")
    plane = app[DATA_PLANE] = DataPlane([], 8 << 20)
    plane.set_fallback(forward, "all")
    return app


async def serve(upstream: str, host: str, port: int, reuse_port: bool) -> None:
    up_host, _, up_port = upstream.rpartition(":")
    pool = UpstreamPool()
    await pool.start()
    runner = GatewayRunner(build_app(Replica(up_host, int(up_port)), pool), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None, backlog=2048)
    await site.start()
    print(f"proxy ready on http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--reuse-port", action="store_true")
    args = parser.parse_args()
    uvloop.run(serve(args.upstream, args.host, args.port, args.reuse_port))


if __name__ == "__main__":
    main()
