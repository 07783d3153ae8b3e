"""Request-ID: keep the caller's (``Request-ID`` or ``X-Request-ID``), else a new UUID4."""

from __future__ import annotations

import os
import re

from aiohttp import web

from .errors import BadRequest, GatewayError
from .filters import hooks_filter

REQUEST_ID_KEY = web.RequestKey("mlgate_request_id", str)
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_RANDOM_BATCH = 256  # ids per os.urandom call


class _RandomIds:
    """UUID4 strings from one ``os.urandom`` read per 256 ids (``uuid.uuid4()`` reads per id
    and builds a UUID object only to format it)."""

    def __init__(self) -> None:
        self._hex = ""
        self._at = 0

    def __call__(self) -> str:
        at = self._at
        if at >= len(self._hex):
            self._hex, at = os.urandom(16 * _RANDOM_BATCH).hex(), 0
        h = self._hex[at:at + 32]
        self._at = at + 32
        variant = "89ab"[int(h[16], 16) & 3]
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


new_request_id = _RandomIds()


def pick_request_id(request_id: str | None, x_request_id: str | None) -> str:
    """The id for this call; ``BadRequest`` when the caller's id is not in the safe set."""
    given = request_id if request_id is not None else x_request_id
    if given is None or given == "":
        return new_request_id()
    if not REQUEST_ID_PATTERN.match(given):
        raise BadRequest(
            "Request-ID must be 1-128 characters of letters, digits, '.', '_', ':' or '-', "
            "starting with a letter or digit"
        )
    return given


def _pick(request: web.Request) -> None:
    headers = request.headers
    request[REQUEST_ID_KEY] = pick_request_id(headers.get("Request-ID"),
                                              headers.get("X-Request-ID"))


def _echo(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["request-id"] = request[REQUEST_ID_KEY]


def _echo_on_error(request: web.Request, exc: Exception) -> None:
    if isinstance(exc, web.HTTPException | GatewayError):
        exc.headers["request-id"] = request[REQUEST_ID_KEY]


request_id_middleware = hooks_filter(_pick, _echo, _echo_on_error, "request_id_middleware")
"""Keep or create the Request-ID, echo it on the answer (errors included)."""
