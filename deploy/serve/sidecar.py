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

import aiohttp
from aiohttp import web

from deploy.compose import build_admission, build_limits, build_sidecar_app, build_writer
from deploy.config import Settings
from deploy.control.identity import UNKNOWN_VERSION, probe_identity
from gateway import GatewayRunner, RouteTable, quiet_protocol_errors, server_settings

log = logging.getLogger("mlgate.sidecar")


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
    table.upsert(deployment_id, deployment_id, UNKNOWN_VERSION).admission = \
        build_admission(settings)
    table.set_replicas(deployment_id, [upstream])
    writer = None
    if records:
        settings.data_path.mkdir(parents=True, exist_ok=True)
        writer = build_writer(settings)
        await writer.start()
    quiet_protocol_errors()
    identity = asyncio.create_task(learn_identity(table, deployment_id, upstream, predictor))
    runner = GatewayRunner(build_sidecar_app(settings, table, deployment_id, writer),
                           handle_signals=False, access_log=None, shutdown_timeout=15,
                           **server_settings(build_limits(settings)))
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
