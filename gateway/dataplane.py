"""Which requests the fast server answers itself (the data plane), and the chain it runs.

A :class:`DataPlane` lives on the gateway app (``app[DATA_PLANE]``). ``create_app``
registers ``/model/...``, ``/custom/...`` and ``/health``; ``deploy.compose`` adds
the feedback endpoints; a sidecar adds every path its other routes leave. Each
handler is registered on the aiohttp router too, so a request the fast server
passes on (below) gets the same handler behind the same filters.

:meth:`DataPlane.route` decides from the request line alone, before the body
arrives. It takes only targets whose meaning cannot differ between the two
servers: an origin-form path without ``%``, ``\\``, dot or empty segments and
without a fragment (so the decoded path is the raw one), a registered method,
and for ``/model/`` a valid deployment id. Everything else — and requests that
need aiohttp's extra machinery (compressed bodies, ``Expect: 100-continue``,
``Upgrade``; see :mod:`gateway.server`) — goes to aiohttp, which answers it
through the same filters, so the answer is the same either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from .filters import Filter, Handler, compose
from .routing import model_deployment_id

ANY = "*"
_UNSAFE = ("%", "\\", "/.", "//", "#")


class DataPlane:
    def __init__(self, chain: list[Filter], max_body: int) -> None:
        self.chain = chain
        self.max_body = max_body
        """Bytes of request body the fast server keeps (beyond: 413, as aiohttp's limit)."""
        self._exact: dict[str, dict[str, Handler]] = {}
        self._prefixes: list[tuple[str, frozenset[str], Handler, Callable[[str], bool]]] = []
        self._fallback: Handler | None = None
        self._fallback_excluded: tuple[str, ...] = ()
        self._fallback_exact: frozenset[str] = frozenset()
        self._fallback_route: str | None = None
        self.handler: Handler = compose(chain, _terminal)
        """The chain over the matched handler: what the fast server awaits per request."""

    def add(self, methods: Iterable[str], path: str, handler: Handler, *,
            prefix: bool = False, accept: Callable[[str], bool] | None = None) -> None:
        """Serve ``path`` (or, with ``prefix``, every path under it that ``accept`` takes)
        for ``methods`` (``"*"``: any) with ``handler``."""
        wanted = frozenset(m.upper() for m in methods)
        if prefix:
            self._prefixes.append((path, wanted, handler, accept or _always))
            return
        by_method = self._exact.setdefault(path, {})
        for method in wanted:
            by_method[method] = handler

    def set_fallback(self, handler: Handler, route_name: str) -> None:
        """Every other path (a sidecar's catch-all, aiohttp route ``route_name``): paths
        under the prefix of any other aiohttp route are left to aiohttp (:meth:`freeze`)."""
        self._fallback = handler
        self._fallback_route = route_name

    def freeze(self, router: web.UrlDispatcher) -> None:
        """Once the app's routes are final: what the fallback must leave to aiohttp."""
        if self._fallback is None:
            return
        exact, prefixes = set(), set()
        for resource in router.resources():
            if resource.name == self._fallback_route:
                continue
            if isinstance(resource, web.PlainResource):
                exact.add(resource.canonical)
            else:
                prefixes.add(resource.canonical.split("{", 1)[0])
        self._fallback_exact = frozenset(exact)
        self._fallback_excluded = tuple(sorted(prefixes))

    def route(self, method: str, target: str) -> Handler | None:
        """The handler for this request line, or None: aiohttp answers it."""
        if not target.startswith("/") or any(u in target for u in _UNSAFE):
            return None
        path = target.partition("?")[0]
        by_method = self._exact.get(path)
        if by_method is not None:
            found = by_method.get(method) or by_method.get(ANY)
            if found is not None:
                return found
        for prefix, methods, handler, accept in self._prefixes:
            if path.startswith(prefix) and (ANY in methods or method in methods) \
                    and accept(path):
                return handler
        if self._fallback is not None and path not in self._fallback_exact \
                and not path.startswith(self._fallback_excluded):
            return self._fallback
        return None


def is_model_path(path: str) -> bool:
    return model_deployment_id(path) is not None


def _always(_path: str) -> bool:
    return True


async def _terminal(request: Any) -> Any:
    return await request.route(request)
