"""Limits on what a client may send: size, shape, time. Nothing here may crash a worker.

* server level (``server_settings``, given to the runner, ``gateway.GatewayRunner``, and
  through it to both servers): header count, header line size, and the idle timeout,
  which also bounds how long a client may take to send a request's head (a slowloris
  connection is closed when it expires);
* ``make_limits_filter`` — before authentication: the path must not try to escape
  (``..``, ``%2e%2e``, encoded ``/`` or ``\\``, empty segments: 400) and a declared
  ``Content-Length`` over the limit is refused at once (413);
* ``make_body_filter`` — after authentication: the body is read within
  ``body_timeout`` (408 otherwise; handlers then get it from aiohttp's cache), and on
  paths where the gateway parses JSON the nesting depth is bounded (400).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .errors import BadRequest, GatewayError, PayloadTooLarge
from .filters import hooks_filter

JSON_PATH_PREFIXES = ("/feedback/", "/api/v1/")


class RequestTimeout(GatewayError):
    status = 408
    kind = "request_timeout"


@dataclass(frozen=True, slots=True)
class Limits:
    max_headers: int = 100
    max_header_bytes: int = 16384
    idle_timeout: float = 30.0
    body_timeout: float = 60.0
    max_json_depth: int = 64

    def __post_init__(self) -> None:
        if self.max_headers < 8 or self.max_header_bytes < 1024:
            raise ValueError("max_headers must be >= 8 and max_header_bytes >= 1024")
        if self.idle_timeout <= 0 or self.body_timeout <= 0:
            raise ValueError("idle_timeout and body_timeout must be > 0")
        if self.max_json_depth < 2:
            raise ValueError("max_json_depth must be >= 2")


def server_settings(limits: Limits) -> dict[str, Any]:
    """Keyword arguments for ``web.AppRunner`` (passed on to each connection's protocol)."""
    return {"max_headers": limits.max_headers, "max_field_size": limits.max_header_bytes,
            "max_line_size": limits.max_header_bytes, "keepalive_timeout": limits.idle_timeout}


class ProtocolErrorFilter(logging.Filter):
    """One line, not a traceback, for requests aiohttp's parser refused.

    aiohttp logs each malformed request (too many headers, a line too long, not
    HTTP at all) at ERROR with a traceback and the first 100 bytes of the offending
    line: a log flood anyone can cause, quoting what may be part of a credential.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            what = str(exc.message).split(":", 1)[0].strip() or type(exc).__name__
            record.msg, record.args = "refused a malformed request from %s: %s", (
                record.args[0] if isinstance(record.args, tuple) and record.args else "?", what)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def quiet_protocol_errors() -> None:
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ProtocolErrorFilter) for f in logger.filters):
        logger.addFilter(ProtocolErrorFilter())


def path_problem(raw_path: str) -> str | None:
    """Why this raw request path is refused, or None.

    Refused rather than normalised: a path that means one thing here and another
    to a replica or to a proxy in front is how a caller allowed on one deployment
    reaches another.
    """
    path = raw_path.partition("?")[0]
    if not path.startswith("/"):
        return "request path must start with '/'"
    if "%" not in path and "\\" not in path and "/." not in path and "//" not in path:
        return None
    if "\\" in path:
        return "request path must not contain '\\'"
    segments = path.split("/")[1:]
    for i, segment in enumerate(segments):
        if segment == "" and i != len(segments) - 1:
            return "request path must not contain empty segments ('//')"
        once = unquote(segment, errors="replace") if "%" in segment else segment
        twice = unquote(once, errors="replace") if "%" in once else once
        for decoded in (once, twice):
            if decoded in (".", ".."):
                return "request path must not contain '.' or '..' segments (even encoded)"
            if "/" in decoded or "\\" in decoded:
                return "request path must not contain encoded '/' or '\\'"
            if any(ord(c) < 0x20 or ord(c) == 0x7f for c in decoded):
                return "request path must not contain control characters"
    return None


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """True when ``value`` nests arrays/objects deeper than ``limit`` (iterative, no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list))
    return False


def make_limits_filter(max_body_bytes: int) -> Callable:
    def limits(request: web.Request) -> None:
        problem = path_problem(request.raw_path)
        if problem is not None:
            raise BadRequest(problem)
        length = request.content_length
        if length is not None and length > max_body_bytes:
            raise PayloadTooLarge(f"request body is {length} bytes; the limit is "
                                  f"{max_body_bytes} bytes")

    return hooks_filter(limits, name="limits")


def make_body_filter(limits: Limits) -> Callable:
    async def read_body(request: web.Request) -> None:
        if request.content.is_eof():  # already all here (the usual small body): no timer
            data = await request.read()
        else:
            try:
                async with asyncio.timeout(limits.body_timeout):
                    data = await request.read()
            except TimeoutError:
                raise RequestTimeout(f"request body not received within "
                                     f"{limits.body_timeout:g} s") from None
        if data and request.path.startswith(JSON_PATH_PREFIXES):
            _check_json_depth(data, limits.max_json_depth)

    def body(request: web.Request) -> Awaitable[None] | None:
        return read_body(request) if request.body_exists else None

    return hooks_filter(body, name="body")


def _check_json_depth(data: bytes, limit: int) -> None:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc):
            raise BadRequest(f"JSON body nests deeper than {limit} levels") from None
        return  # not JSON: the handler answers with its own message
    if json_depth_exceeds(doc, limit):
        raise BadRequest(f"JSON body nests deeper than {limit} levels")
