"""The framework floor: a plain aiohttp pass-through proxy, nothing else.

    .venv/bin/python bench/aiohttp_proxy.py --upstream 127.0.0.1:9001 --port 9002 [--reuse-port]

One aiohttp server (uvloop) forwarding every request, body and headers as they
are, through one pooled keep-alive ``ClientSession`` and returning the answer:
no authentication, Request-ID, metrics, logging or routing. The benchmark runs
as many of these on one port (``SO_REUSEPORT``) as mlgate has worker
processes, so "mlgate / aiohttp pass-through" is what mlgate's features cost
on top of the HTTP server and client it is built on. Prints
``proxy ready on http://HOST:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import aiohttp
import uvloop
from aiohttp import web

HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length",
                        "host"})


def build_app(upstream: str) -> web.Application:
    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def start(app: web.Application) -> None:
        app[session_key] = aiohttp.ClientSession(
            f"http://{upstream}", connector=aiohttp.TCPConnector(limit=1000),
            auto_decompress=False, skip_auto_headers=("User-Agent", "Accept-Encoding"))

    async def stop(app: web.Application) -> None:
        await app[session_key].close()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with request.app[session_key].request(request.method, request.path_qs,
                                                     headers=headers, data=body) as up:
            payload = await up.read()
            out = {k: v for k, v in up.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=up.status, body=payload, headers=out)

    app = web.Application()
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def serve(upstream: str, host: str, port: int, reuse_port: bool) -> None:
    runner = web.AppRunner(build_app(upstream), access_log=None)
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
