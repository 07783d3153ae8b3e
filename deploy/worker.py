"""``python -m deploy.worker``: one gateway worker of ``mlgate up --workers N``.

Started by the primary (:mod:`deploy.workers`), never by hand. Serves the data
plane on the shared port and forwards everything else to the primary; see
:mod:`deploy.workers` for the whole design.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable

import uvloop
from aiohttp import web

from gateway import RouteTable, server_settings
from gateway.app import OBSERVER
from gateway.errors import GatewayError, Handler, error_response
from gateway.headers import HOP_BY_HOP
from gateway.limits import quiet_protocol_errors
from gateway.routing import Replica
from gateway.upstream import Timeouts, UpstreamPool
from storage import StorageError

from .cli import configure_logging
from .config import ConfigError, load_settings
from .keys import build_auth_config
from .up import build_app, build_limits, build_writer
from .worker_link import LOAD_INTERVAL, OBSERVED_EVERY, Link, apply_snapshot, load_report
from .workers import worker_spool_dir

log = logging.getLogger("mlgate.worker")

LOCAL_PREFIXES = ("/model/", "/custom/", "/feedback/", "/api/v1/feedback")
LOCAL_PATHS = frozenset({"/health", "/custom", "/api/v1/feedback"})


def served_here(path: str) -> bool:
    """Does a worker answer ``path`` itself (the data plane), or the primary?"""
    return path in LOCAL_PATHS or path.startswith(LOCAL_PREFIXES)


def make_forward_filter(pool: UpstreamPool, primary: Replica) -> Callable:
    """Everything a worker does not serve goes to the primary, as it came. Outermost, so
    the primary alone observes, logs and answers those requests."""

    @web.middleware
    async def forward_to_primary(request: web.Request, handler: Handler) -> web.StreamResponse:
        if served_here(request.path):
            return await handler(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        peer = request.remote
        if peer:
            given = request.headers.get("X-Forwarded-For")
            headers["X-Forwarded-For"] = f"{given}, {peer}" if given else peer
        try:
            body = await request.read() if request.body_exists else b""
            up = await pool.send(primary, request.method, request.raw_path, headers, body)
        except GatewayError as exc:
            return error_response(exc.status, f"the primary mlgate process: {exc.message}",
                                  exc.kind, exc.headers)
        out = [(k, v) for k, v in up.headers.items() if k.lower() not in HOP_BY_HOP]
        response = web.Response(status=up.status, body=up.body or None)
        for name, value in out:
            response.headers.add(name, value)
        return response

    return forward_to_primary


async def run_worker(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, overrides={
        "host": args.host, "port": args.port, "data_dir": args.data_dir})
    quiet_protocol_errors()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    link = await Link.open(socket.socket(fileno=args.link_fd))
    table = RouteTable()
    writer = build_writer(settings, worker_spool_dir(settings.data_path, args.index))
    try:
        await writer.start()
    except StorageError as exc:
        print(f"mlgate worker {args.index}: {exc}", file=sys.stderr, flush=True)
        return 1
    host, _, port = args.primary.rpartition(":")
    primary = Replica(host, int(port))
    forward_pool = UpstreamPool(Timeouts(connect=settings.gateway.connect_timeout,
                                         read=settings.gateway.read_timeout))
    app = build_app(settings, table, writer, build_auth_config(settings), store=None)
    app.middlewares.insert(0, make_forward_filter(forward_pool, primary))
    observer = app[OBSERVER]

    async def forward_pool_ctx(_app: web.Application):
        await forward_pool.start()
        yield
        await forward_pool.close()

    app.cleanup_ctx.append(forward_pool_ctx)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=15,
                           **server_settings(build_limits(settings)))

    def demand(dep_id: str) -> None:
        link.send("demand", dep_id)

    listening = False

    async def follow() -> None:
        nonlocal listening
        while True:
            message = await link.receive()
            if message is None:
                log.warning("the primary closed the link: stopping")
                stop.set()
                return
            if message[0] == "table":
                apply_snapshot(table, message[1], demand)
                if not listening:
                    listening = True
                    await runner.setup()
                    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True,
                                       reuse_port=True, backlog=2048)
                    await site.start()
                    link.send("ready")

    async def report() -> None:
        ticks = 0
        while True:
            await asyncio.sleep(LOAD_INTERVAL)
            link.send("load", load_report(table))
            ticks += 1
            if ticks % OBSERVED_EVERY == 0:
                link.send("observed", observer.peer_report())

    tasks = [asyncio.create_task(follow(), name="follow-primary"),
             asyncio.create_task(report(), name="report-load")]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if listening:
            await runner.cleanup()
        await writer.close()
        await link.close()
        log.info("worker %d storage: %s", args.index, writer.stats.as_dict())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.worker", description=__doc__)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--link-fd", type=int, required=True)
    parser.add_argument("--primary", required=True, help="HOST:PORT of the primary's listener")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--config")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"mlgate worker: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_worker(args))


if __name__ == "__main__":
    sys.exit(main())
