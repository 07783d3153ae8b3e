"""The filter contract: one chain of filters, run by both servers of the gateway.

mlgate answers HTTP with two servers behind one port (:mod:`gateway.server`): a
protocol-level server for the data plane (``/model/...``, ``/custom/...``, feedback,
``/health``) and aiohttp for the rest (management API, pages, metrics). Both run the
*same* list of filters, built once by :func:`gateway.app.build_filter_chain`; a filter
is written once and serves both.

A **filter** is ``async def f(request, handler) -> response``, decorated with
``@web.middleware`` (aiohttp's middleware signature, so the list is also the aiohttp
app's ``middlewares``; both servers pass ``handler`` by keyword). It either answers
itself — by raising a :class:`~gateway.errors.GatewayError` (turned into a JSON answer
by the error filter) or returning an :class:`Answer` — or returns ``await
handler(request)``. Filters are built by a factory from validated, immutable config
(``make_x_filter(cfg) -> filter``) and keep no per-request state of their own.

The **request** a filter sees is this subset of aiohttp's ``web.Request`` interface,
which :class:`gateway.fast_request.FastRequest` implements too, and nothing else:

===========================  ==========================================================
``method``                   ``"GET"``, ``"POST"``, ...
``path`` / ``raw_path``      decoded path without query / the request target as sent
``headers``                  case-insensitive multi-mapping (``get``, ``getall``, ...)
``content_length``           the declared ``Content-Length`` or None
``body_exists``              a body was announced (length > 0 or chunked)
``content.is_eof()``         the whole body has arrived
``await read()``             the body as bytes (once read, cached; 413 past the limit)
``remote``, ``scheme``,      the peer's address, ``http``/``https``, the Host
``host``
``cookies``                  the Cookie header as a mapping
``request[KEY]``             per-request state under ``web.RequestKey`` keys
                             (``get``, ``in``): what one filter leaves for the next
===========================  ==========================================================

The **response** a filter gets back or builds has ``status``, ``headers`` (a mutable
case-insensitive multi-mapping) and ``body`` (bytes). The gateway's own answers are
:class:`Answer` objects — a few slots, no framework machinery; handlers of other
packages may return aiohttp's ``web.Response`` (the fast server writes either).
aiohttp turns an ``Answer`` into a ``web.Response`` in :func:`answer_adapter`, its
outermost middleware.

Two kinds of filter. An *around* filter is any such middleware (observe, the error
mapping: they time or catch what is inside them). A *hook* filter is built by
:func:`hooks_filter` from ``before(request)`` (check, raise to answer, leave state on
the request; may return an awaitable), ``after(request, response)`` and
``on_error(request, exc)``: the middleware it returns means exactly that, and the fast
server runs a run of consecutive hook filters in one step (:func:`compose`), without a
coroutine per filter. Most filters are checks; make them hook filters.

Adding a filter (both servers at once): write its factory in its own module, add
it to the one list in :func:`gateway.app.build_filter_chain` at its place in the
order, and test it at the level of a request (``tests/gateway/parity`` runs the gateway
suites through both servers). State a later filter or the handler needs goes on the
request under a ``web.RequestKey``. A filter must not read the
body before authentication (``make_body_filter`` reads it, with its deadline).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import orjson
from aiohttp import web
from multidict import CIMultiDict

JSON_TYPE = "application/json"


class Answer:
    """A complete answer: status, headers, body bytes. What gateway filters and the data
    plane's handlers return; written to the wire as it is by the fast server."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: CIMultiDict[str], body: bytes = b"") -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        return f"<Answer {self.status} {len(self.body)} bytes>"


def answer_json(status: int, payload: object,
                headers: Mapping[str, str] | None = None) -> Answer:
    out: CIMultiDict[str] = CIMultiDict(headers) if headers else CIMultiDict()
    out["Content-Type"] = JSON_TYPE
    return Answer(status, out, orjson.dumps(payload))


class Request(Protocol):
    """What a filter may use of a request (module docstring): aiohttp's ``web.Request``
    and :class:`gateway.server.FastRequest` both are one."""

    method: str
    path: str
    raw_path: str
    headers: Any
    content_length: int | None
    body_exists: bool
    remote: str | None
    scheme: str
    host: str
    cookies: Mapping[str, str]
    content: Any

    async def read(self) -> bytes: ...
    def __getitem__(self, key: Any) -> Any: ...
    def __setitem__(self, key: Any, value: Any) -> None: ...
    def __contains__(self, key: object) -> bool: ...
    def get(self, key: Any, default: Any = None) -> Any: ...


Response = Answer | web.StreamResponse
Handler = Callable[[Any], Awaitable[Any]]
Filter = Callable[..., Awaitable[Any]]
"""``async def f(request, handler) -> response``, marked ``@web.middleware``; ``handler``
is passed by keyword."""


Before = Callable[[Any], "Awaitable[None] | None"]
After = Callable[[Any, Any], None]
OnError = Callable[[Any, Exception], None]


def hooks_filter(before: Before, after: After | None = None,
                 on_error: OnError | None = None, name: str | None = None) -> Filter:
    """A filter made of hooks: ``before(request)`` (may answer by raising; may return an
    awaitable), then the rest of the chain, then ``after(request, response)``; when the
    rest raised, ``on_error(request, exc)`` (then the exception goes on). The returned
    middleware is exactly that; :func:`compose` runs consecutive hook filters in one step
    instead of one coroutine each, which is what makes them the cheaper kind."""

    @web.middleware
    async def hooks(request: Any, handler: Handler) -> Any:
        pending = before(request)
        if pending is not None:
            await pending
        if on_error is None:
            response = await handler(request)
        else:
            try:
                response = await handler(request)
            except Exception as exc:
                on_error(request, exc)
                raise
        if after is not None:
            after(request, response)
        return response

    hooks.hooks = (before, after, on_error)  # type: ignore[attr-defined]
    if name:
        hooks.__name__ = hooks.__qualname__ = name
    return hooks


def compose(chain: list[Filter], terminal: Handler) -> Handler:
    """The chain as one handler, outermost first, as aiohttp composes middlewares (a
    ``partial`` per filter: no extra coroutine per step), except that a run of hook filters
    (:func:`hooks_filter`) becomes one step with the same meaning."""
    steps: list[Any] = []
    for f in chain:
        hooks = getattr(f, "hooks", None)
        if hooks is not None and steps and isinstance(steps[-1], list):
            steps[-1].append(hooks)
        else:
            steps.append([hooks] if hooks is not None else f)
    handler = terminal
    for step in reversed(steps):
        if isinstance(step, list):
            handler = functools.partial(_run_hooks, tuple(step), handler=handler)
        else:
            handler = functools.partial(step, handler=handler)
    return handler


async def _run_hooks(hooks: tuple[tuple[Before, After | None, OnError | None], ...],
                     request: Any, handler: Handler) -> Any:
    """``hooks`` nested as their middlewares would be: a hook filter's ``on_error`` sees what
    the filters after it and the handler raised, once its own ``before`` passed."""
    passed = 0
    try:
        for before, _after, _on_error in hooks:
            pending = before(request)
            if pending is not None:
                await pending
            passed += 1
        response = await handler(request)
    except Exception as exc:
        for _before, _after, on_error in reversed(hooks[:passed]):
            if on_error is not None:
                on_error(request, exc)
        raise
    for _before, after, _on_error in reversed(hooks):
        if after is not None:
            after(request, response)
    return response


def to_aiohttp(response: Any) -> web.StreamResponse:
    if type(response) is Answer:
        return web.Response(status=response.status, body=response.body or None,
                            headers=response.headers)
    return response


@web.middleware
async def answer_adapter(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp only, outermost: an :class:`Answer` from the chain becomes a ``web.Response``."""
    return to_aiohttp(await handler(request))
