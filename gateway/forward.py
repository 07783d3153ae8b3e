"""Forward to the primary: a gateway worker of ``mlgate up --workers N`` serves the data plane
itself and sends everything else (management API, pages, metrics) to the primary process.

Outermost in the chain, so the primary alone observes, logs and answers those requests.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from .errors import GatewayError, Handler, error_response
from .headers import HOP_BY_HOP
from .routing import Replica
from .upstream import UpstreamPool

LOCAL_PREFIXES = ("/model/", "/custom/", "/feedback/", "/api/v1/feedback")
LOCAL_PATHS = frozenset({"/health", "/custom", "/api/v1/feedback"})


def served_here(path: str) -> bool:
    """Does a worker answer ``path`` itself (the data plane), or the primary?"""
    return path in LOCAL_PATHS or path.startswith(LOCAL_PREFIXES)


def make_forward_filter(pool: UpstreamPool, primary: Replica) -> Callable:
    """Everything a worker does not serve goes to ``primary``, as it came."""

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
        response = web.Response(status=up.status, body=up.body or None)
        for name, value in up.headers.items():
            if name.lower() not in HOP_BY_HOP:
                response.headers.add(name, value)
        return response

    return forward_to_primary
