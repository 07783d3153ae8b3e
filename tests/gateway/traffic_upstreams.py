"""In-process upstream servers for the route and mirror tests: each says who it is."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway import RouteTable


def free_port() -> int:
    """A port nothing listens on (connecting to it is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream:
    """A model stand-in on 127.0.0.1: answers ``{"served_by": name}`` with ``status``;
    while ``gate`` is set and not open, requests wait for it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 200
        self.gate: asyncio.Event | None = None
        self.server: TestServer | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append((request.path_qs, dict(request.headers), body))
        if self.gate is not None:
            await self.gate.wait()
        return web.json_response({"served_by": self.name}, status=self.status)

    async def start(self) -> Upstream:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    async def close(self) -> None:
        if self.gate is not None:
            self.gate.set()
        if self.server is not None:
            await self.server.close()


async def upstreams(table: RouteTable, *names: str) -> dict[str, Upstream]:
    """One started upstream per name, each published as deployment ``name`` (model ``name``,
    version 1.0) with one replica."""
    started = {}
    for name in names:
        started[name] = await Upstream(name).start()
        table.upsert(name, f"model-{name}", "1.0")
        table.set_replicas(name, [("127.0.0.1", started[name].port)])
    return started


async def wait_for(check, what: str, timeout: float = 10.0):
    """Poll ``check()`` in the loop until truthy (returned); fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.01)
