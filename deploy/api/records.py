"""``GET /api/v1/records``: stored records from the configured bucket, as JSON Lines.

What ``mlgate records cat`` reads, over HTTP, for clients that hold a token but not the
bucket's credentials (the Python SDK's ``Client.records``). Query parameters: ``kind``
(``request_response``, ``response_body`` or ``feedback``; default ``request_response``),
``model``, ``version`` (needs ``model``), ``since``/``until`` (UTC dates or times, as the CLI
takes them) and ``limit`` (default and most: ``MAX_RECORDS``). Records still in a spool are
not in the bucket yet. The answer streams (``application/x-ndjson``), at most ``limit``
lines: a client that gets exactly ``limit`` asks again with a narrower range.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from aiohttp import web

from deploy.control.resource import ValidationError
from storage import REQUEST_RESPONSE, Backend, RecordQuery, iter_records, parse_bound

MAX_RECORDS = 100_000


@dataclass(frozen=True)
class RecordSource:
    """Where the stack's records are, for the API's reads (records, data sets): a backend of
    its own (not the writer's) and the key prefix."""

    backend: Backend
    prefix: str = ""


RECORDS = web.AppKey("mlgate_record_source", RecordSource)


def query_of(params: dict[str, str]) -> tuple[RecordQuery, int]:
    """The query and the limit asked for, or ``ValidationError`` naming each bad parameter."""
    errors = []
    bounds = {}
    for name in ("since", "until"):
        try:
            bounds[name] = parse_bound(params[name]) if params.get(name) else None
        except ValueError as exc:
            errors.append(f"{name}: {exc}")
    try:
        limit = int(params.get("limit") or MAX_RECORDS)
        if not 1 <= limit <= MAX_RECORDS:
            raise ValueError
    except ValueError:
        errors.append(f"limit must be a whole number from 1 to {MAX_RECORDS}")
        limit = MAX_RECORDS
    query = None
    try:
        query = RecordQuery(params.get("kind") or REQUEST_RESPONSE, params.get("model") or None,
                            params.get("version") or None, bounds.get("since"),
                            bounds.get("until"))
    except ValueError as exc:
        errors.append(str(exc))
    if errors or query is None:
        raise ValidationError("invalid records query", errors)
    return query, limit


async def get_records(request: web.Request) -> web.StreamResponse:
    query, limit = query_of(dict(request.query))
    source = request.app[RECORDS]
    records = iter_records(source.backend, source.prefix, query)
    first = await anext(records, None)  # a StorageError here answers 503 (common.py)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    sent = 0
    record = first
    while record is not None and sent < limit:
        await response.write(orjson.dumps(record) + b"\n")
        sent += 1
        record = await anext(records, None) if sent < limit else None
    await response.write_eof()
    return response


def add_routes(app: web.Application, prefix: str, source: RecordSource) -> None:
    """``GET <prefix>/records``; the API owns ``source``'s backend (closed with the app) and
    shares it with the data set endpoint."""
    app[RECORDS] = source

    async def close_backend(_app: web.Application) -> AsyncIterator[None]:
        yield
        await source.backend.close()

    app.cleanup_ctx.append(close_backend)
    app.router.add_get(f"{prefix}/records", get_records)
