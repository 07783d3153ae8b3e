"""The three record kinds and how they are built.

Records are plain dicts serialised as JSON Lines. Field names and value
shapes follow the seed document: ``response_status`` is a string, headers are
flat string maps with HTTP/2-style pseudo headers (``:method``, ``:path``,
``:status``), ``time`` is ``YYYY-MM-DD HH:MM:SS +0000`` in UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

REQUEST_RESPONSE = "request_response"
RESPONSE_BODY = "response_body"
FEEDBACK = "feedback"
KINDS = (REQUEST_RESPONSE, RESPONSE_BODY, FEEDBACK)

DEFAULT_REDACTED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)


_last_second: tuple[int, str] = (-1, "")


def format_time(when: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS +0000``; memoised per second (records come in bursts)."""
    global _last_second
    if when.tzinfo is UTC:
        second = int(when.timestamp())
        cached = _last_second
        if cached[0] == second:
            return cached[1]
        text = when.strftime("%Y-%m-%d %H:%M:%S +0000")
        _last_second = (second, text)
        return text
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000")


def decode_body(body: bytes) -> str:
    """Bodies are stored as strings; bytes that are not UTF-8 are replaced, never raised."""
    return body.decode("utf-8", errors="replace")


def clean_headers(headers: Iterable[tuple[str, str]],
                  redacted: frozenset[str] = DEFAULT_REDACTED_HEADERS) -> dict[str, str]:
    """Lower-cased header map without the redacted names (repeated headers joined by ``,``)."""
    out: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if key in redacted:
            continue
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


@dataclass(slots=True)
class Exchange:
    """What the gateway hands over after answering: raw parts, no formatting done yet.

    Building the records from this happens in the writer's background task, off
    the request path.
    """

    request_id: str
    model_name: str
    model_version: str
    method: str
    uri: str
    upstream_path: str
    host: str
    scheme: str
    request_headers: Iterable[tuple[str, str]]
    request_body: bytes
    status: int
    response_headers: Iterable[tuple[str, str]]
    response_body: bytes
    when: datetime
    extra: Mapping[str, Any] | None = None


def request_response_record(ex: Exchange,
                            redacted: frozenset[str] = DEFAULT_REDACTED_HEADERS) -> dict[str, Any]:
    request_headers = {
        ":method": ex.method,
        ":path": ex.upstream_path,
        ":authority": ex.host,
        ":scheme": ex.scheme,
        "x-original-uri": ex.uri,
    }
    request_headers.update(clean_headers(ex.request_headers, redacted))
    response_headers = {":status": str(ex.status)}
    response_headers.update(clean_headers(ex.response_headers, redacted))
    record: dict[str, Any] = {
        "request_id": ex.request_id,
        "request_content": decode_body(ex.request_body),
        "request_uri": ex.uri,
        "request_http_method": ex.method,
        "request_http_headers": request_headers,
        "request_host": ex.host,
        "response_status": str(ex.status),
        "response_http_headers": response_headers,
        "model_name": ex.model_name,
        "model_version": ex.model_version,
        "time": format_time(ex.when),
    }
    if ex.extra:
        record.update(ex.extra)
    return record


def response_body_record(ex: Exchange) -> dict[str, Any]:
    return {
        "request_id": ex.request_id,
        "model_name": ex.model_name,
        "model_version": ex.model_version,
        "response_content": decode_body(ex.response_body),
        "time": format_time(ex.when),
    }


def feedback_record(request_id: str, model_name: str, model_version: str, body: Any,
                    when: datetime) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "model_name": model_name,
        "model_version": model_version,
        "payload": {"json": body},
        "time": format_time(when),
    }
