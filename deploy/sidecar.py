"""``mlgate sidecar``: the gateway inside a model's pod, in front of one predictor on localhost.

The same filter chain as the edge (errors, Request-ID, and whatever the chain grows:
authentication, logging), over a one-deployment routing table whose only replica is
the predictor. Paths arrive bare (``/api/model/invoke``), as a mesh or the edge sends
them to the pod, and go to the predictor unchanged. The model's name and version are
asked from the predictor in the background, so the pod's port opens at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

import aiohttp
from aiohttp import web

from gateway import POOL, GatewayConfig, RouteTable, Timeouts, create_app
from gateway.proxy import make_proxy_handler
from storage import Exchange

from .config import Settings
from .k8s_identity import UNKNOWN_VERSION, probe_identity
from .up import build_writer

log = logging.getLogger("mlgate.sidecar")


def build_sidecar_app(settings: Settings, table: RouteTable, deployment_id: str,
                      sink: Callable[[Exchange], object]) -> web.Application:
    g = settings.gateway
    app = create_app(GatewayConfig(timeouts=Timeouts(connect=g.connect_timeout,
                                                     read=g.read_timeout),
                                   max_body_bytes=g.max_body_bytes), table, sink)
    app.router.add_route("*", "/{tail:.*}",
                         make_proxy_handler(table, app[POOL], sink, deployment_id=deployment_id),
                         name="sidecar")
    return app


async def learn_identity(table: RouteTable, deployment_id: str, upstream: tuple[str, int],
                         predictor: str, interval: float = 1.0) -> None:
    """Ask the predictor which model it serves until it says (it may still be loading)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while True:
            identity = await probe_identity(session, *upstream, predictor)
            if identity is not None:
                table.upsert(deployment_id, *identity)
                log.info("predictor serves model %s %s", *identity)
                return
            await asyncio.sleep(interval)


async def run_sidecar(settings: Settings, upstream: tuple[str, int], deployment_id: str,
                      predictor: str, records: bool) -> int:
    """Serve until SIGTERM/SIGINT; the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    table = RouteTable()
    table.upsert(deployment_id, deployment_id, UNKNOWN_VERSION)
    table.set_replicas(deployment_id, [upstream])
    writer = None
    if records:
        settings.data_path.mkdir(parents=True, exist_ok=True)
        writer = build_writer(settings)
        await writer.start()
    sink: Callable[[Exchange], object] = writer.offer if writer else (lambda _exchange: None)
    identity = asyncio.create_task(learn_identity(table, deployment_id, upstream, predictor))
    runner = web.AppRunner(build_sidecar_app(settings, table, deployment_id, sink),
                           handle_signals=False, access_log=None, shutdown_timeout=15)
    code = 0
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
        await site.start()
        host, port = runner.addresses[0][:2]
        print(f"mlgate sidecar ready on http://{host}:{port} -> {upstream[0]}:{upstream[1]}",
              flush=True)
        await stop.wait()
    except OSError as exc:
        log.error("cannot listen on %s:%s: %s", settings.host, settings.port, exc)
        code = 1
    finally:
        identity.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await identity
        await runner.cleanup()
        if writer is not None:
            await writer.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return code
