"""What every handler of the management API shares: JSON in, JSON out, ODAHU's error shape."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from deploy.control.resource import ValidationError
from deploy.control.store import Store, StoreError
from gateway import add_exception_handler, json_response
from storage import StorageError

STORE = web.AppKey("mlgate_store", Store)
EDGE_URL = web.AppKey("mlgate_edge_url", str)


def api_error_body(_status: int, message: str, _kind: str) -> dict[str, str]:
    """The gateway's error formatter for paths under the API (404/405 before routing, ...)."""
    return {"message": message}


class BadBody(Exception):
    """The request body is not a JSON object."""


async def read_object(request: web.Request) -> dict[str, Any]:
    body = await request.read()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadBody(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadBody("the request body must be a JSON object")
    return data


def edge_url(request: web.Request) -> str:
    """Where clients reach the gateway: ``api.edge_url`` if configured, else this request's."""
    configured = request.app.get(EDGE_URL)
    return configured or f"{request.scheme}://{request.host}"


def answer(status: int, payload: Any) -> web.Response:
    return json_response(status, payload)


def add_error_mapping(app: web.Application) -> None:
    """The API's one error mapping (no handler catches these itself): validation and body
    errors answer 400, store errors their own status (404, 409, ...), as ODAHU does; the
    record storage failing answers 503 with ``Retry-After``."""
    add_exception_handler(app, ValidationError, lambda exc: (400, str(exc), None))
    add_exception_handler(app, BadBody, lambda exc: (400, str(exc), None))
    add_exception_handler(app, StoreError, lambda exc: (exc.status, str(exc), None))
    add_exception_handler(app, StorageError, map_storage_error)
    add_exception_handler(app, Unavailable, lambda exc: (503, str(exc), None))


def map_storage_error(exc: StorageError) -> tuple[int, str, dict[str, str] | None]:
    """A bucket a handler had to read (a job's input, records): 503 with ``Retry-After``
    while it may come back, else 400."""
    if exc.retryable:
        return 503, f"cannot read the bucket, retry later: {exc}", {"Retry-After": "5"}
    return 400, f"cannot read the bucket: {exc}", None


class Unavailable(Exception):
    """This process cannot answer that (a feature switched off, an extra not installed)."""
