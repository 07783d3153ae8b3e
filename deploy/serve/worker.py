"""``python -m deploy.serve.worker``: one gateway worker of ``mlgate up --workers N``.

Started by the primary (:mod:`deploy.serve.workers`), never by hand. Serves the data
plane on the shared port and forwards everything else to the primary; see
:mod:`deploy.serve.workers` for the whole design.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys

import uvloop
from aiohttp import web

from deploy.compose import (
    build_app,
    build_auth_config,
    build_buckets,
    build_limits,
    build_tls,
    build_writer,
    configure_logging_from,
)
from deploy.config import ConfigError, load_settings
from deploy.serve.worker_link import (
    LOAD_INTERVAL,
    OBSERVED_EVERY,
    Link,
    apply_snapshot,
    load_report,
)
from deploy.serve.workers import worker_spool_dir
from gateway import (
    OBSERVER,
    GatewayRunner,
    Replica,
    Revocations,
    RouteTable,
    TlsConfigError,
    quiet_protocol_errors,
    server_settings,
)
from storage import StorageError

log = logging.getLogger("mlgate.worker")


async def run_worker(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, overrides={
        "host": args.host, "port": args.port, "data_dir": args.data_dir,
        "workers": args.workers})  # as the primary runs: shares of bounds, the shared table
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
    revocations = Revocations()
    try:
        tls = build_tls(settings)
        buckets = build_buckets(settings, primary=False)
    except (TlsConfigError, OSError, ValueError) as exc:
        print(f"mlgate worker {args.index}: {exc}", file=sys.stderr, flush=True)
        await writer.close()
        return 1
    app = build_app(settings, table, writer, build_auth_config(settings), store=None,
                    forward_to=Replica(host, int(port)), buckets=buckets,
                    revocations=revocations)
    if tls is not None:
        app.cleanup_ctx.append(tls.ctx)
    observer = app[OBSERVER]
    runner = GatewayRunner(app, handle_signals=False, access_log=None, shutdown_timeout=15,
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
            if message[0] == "revocations":
                revocations.replace(message[1])
            elif message[0] == "table":
                apply_snapshot(table, message[1], demand)
                if not listening:
                    listening = True
                    await runner.setup()
                    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True,
                                       reuse_port=True, backlog=2048,
                                       ssl_context=tls.context if tls is not None else None)
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
        buckets_close = getattr(buckets, "close", None)
        if buckets_close is not None:
            buckets_close()
        log.info("worker %d storage: %s", args.index, writer.stats.as_dict())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.serve.worker", description=__doc__)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--link-fd", type=int, required=True)
    parser.add_argument("--primary", required=True, help="HOST:PORT of the primary's listener")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--workers", type=int, default=None,
                        help="processes serving the port, the primary included")
    parser.add_argument("--config")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"mlgate worker: {exc}", file=sys.stderr)
        return 2
    configure_logging_from(settings)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_worker(args))


if __name__ == "__main__":
    sys.exit(main())
