"""The three record kinds and how they are built.

Records are plain dicts serialised as JSON Lines. Field names and value
shapes follow the seed document: ``response_status`` is a string, headers are
flat string maps with HTTP/2-style pseudo headers (``:method``, ``:path``,
``:status``), ``time`` is ``YYYY-MM-DD HH:MM:SS +0000`` in UTC.

Bodies are stored as strings (``request_content``, ``response_content``), so that
a record is always one valid JSON line, whatever the bytes were:

* a body with ``Content-Encoding: gzip`` (or ``x-gzip``, ``deflate``) is stored
  decoded, and ``<side>_content_decoded`` names the encoding removed (up to
  ``MAX_DECODED_BYTES``; a body that cannot be decoded is kept as it came);
* with Triton's binary tensor extension (an ``Inference-Header-Content-Length: N``
  header) the first N bytes, the JSON header, are the content, and the binary
  tensors after it are ``<side>_binary`` (base64) with ``<side>_binary_size``;
* bytes that are not UTF-8 text are stored base64, marked
  ``<side>_content_encoding: "base64"`` (or ``<side>_binary``);
* binary parts larger than ``MAX_BINARY_BYTES`` are not stored: only their size,
  with ``<side>_content_encoding: "omitted"`` or without ``<side>_binary``.

``<side>`` is ``request`` in ``request_response`` records and ``response`` in
``response_body`` ones. A text body without content encoding gets none of these
extra fields.

Additions to the seed's fields (which stay exactly as they are): both kinds carry
``deployment_id`` (the ModelDeployment that answered) and, for a call a ModelRoute
chose, ``route_id``; ``response_body`` also carries ``response_status``, so the
feedback loop can tell a prediction from an error with that record alone,
``upstream_ms`` (the time the replica took to answer, in milliseconds, when one was
called: the latency samples of the canary analysis) and ``mirror: true`` for a
ModelRoute mirror's shadow copy. ``feedback`` carries ``time_us`` (its arrival in
microseconds since the epoch), which orders two feedbacks for one Request-ID
within the same second: the later one is the correction.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

REQUEST_RESPONSE = "request_response"
RESPONSE_BODY = "response_body"
FEEDBACK = "feedback"
KINDS = (REQUEST_RESPONSE, RESPONSE_BODY, FEEDBACK)

DEFAULT_REDACTED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)


MAX_BINARY_BYTES = 1 << 20
MAX_DECODED_BYTES = 64 << 20
BINARY_HEADER_LENGTH = "inference-header-content-length"
_DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

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


def header_value(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` (lower case), or ``None``."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def content_decode(body: bytes, encoding: str | None,
                   limit: int = MAX_DECODED_BYTES) -> tuple[bytes, str | None]:
    """``(decoded, encoding removed)``; ``(body, None)`` when there is nothing to undo,
    the encoding is unknown, the bytes are broken or would decode to more than ``limit``."""
    name = (encoding or "").strip().lower()
    wbits = _DECODERS.get(name)
    if wbits is None or not body:
        return body, None
    candidates = [wbits, -zlib.MAX_WBITS] if name == "deflate" else [wbits]
    for bits in candidates:  # "deflate" is meant as zlib, but raw deflate is seen too
        decoder = zlib.decompressobj(bits)
        try:
            out = decoder.decompress(body, limit + 1)
        except zlib.error:
            continue
        if len(out) <= limit and decoder.eof:
            return out, name
        return body, None
    return body, None


def _binary_split(data: bytes, header_length: str | None) -> tuple[bytes, bytes] | None:
    if header_length is None:
        return None
    try:
        n = int(header_length.strip())
    except ValueError:
        return None
    if not 0 <= n <= len(data):
        return None
    return data[:n], data[n:]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def stored_body(side: str, body: bytes, headers: Iterable[tuple[str, str]],
                max_binary: int = MAX_BINARY_BYTES) -> dict[str, Any]:
    """``{"<side>_content": str, ...}``: the body as the record stores it (module docstring)."""
    out: dict[str, Any] = {}
    encoding = binary_length = None
    for key, value in headers:  # one pass for the two headers that matter (first value)
        key = key.lower()
        if key == "content-encoding":
            encoding = value if encoding is None else encoding
        elif key == BINARY_HEADER_LENGTH:
            binary_length = value if binary_length is None else binary_length
    data, removed = content_decode(body, encoding)
    if removed:
        out[f"{side}_content_decoded"] = removed
    split = _binary_split(data, binary_length)
    if split is not None:
        head, binary = split
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            pass  # not the extension after all: stored as one binary body below
        else:
            out[f"{side}_content"] = text
            out[f"{side}_binary_size"] = len(binary)
            if len(binary) <= max_binary:
                out[f"{side}_binary"] = _b64(binary)
            return out
    try:
        out[f"{side}_content"] = data.decode("utf-8")
    except UnicodeDecodeError:
        if len(data) <= max_binary:
            out[f"{side}_content"] = _b64(data)
            out[f"{side}_content_encoding"] = "base64"
        else:
            out[f"{side}_content"] = ""
            out[f"{side}_content_encoding"] = "omitted"
            out[f"{side}_content_size"] = len(data)
    return out


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
    deployment_id: str | None = None
    """The ModelDeployment that answered (two deployments may serve one model version)."""
    route_id: str | None = None
    """The ModelRoute that chose it, for calls through ``/custom/...``."""
    upstream_seconds: float | None = None
    """How long the replica took to answer (None: no replica was called)."""


def _served_by(ex: Exchange) -> dict[str, str]:
    out = {}
    if ex.deployment_id is not None:
        out["deployment_id"] = ex.deployment_id
    if ex.route_id is not None:
        out["route_id"] = ex.route_id
    return out


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
    body = stored_body("request", ex.request_body, ex.request_headers)
    record: dict[str, Any] = {
        "request_id": ex.request_id,
        "request_content": body.pop("request_content"),
        "request_uri": ex.uri,
        "request_http_method": ex.method,
        "request_http_headers": request_headers,
        "request_host": ex.host,
        "response_status": str(ex.status),
        "response_http_headers": response_headers,
        "model_name": ex.model_name,
        "model_version": ex.model_version,
        "time": format_time(ex.when),
        **body,
        **_served_by(ex),
    }
    if ex.extra:
        record.update(ex.extra)
    return record


def response_body_record(ex: Exchange) -> dict[str, Any]:
    body = stored_body("response", ex.response_body, ex.response_headers)
    record = {
        "request_id": ex.request_id,
        "model_name": ex.model_name,
        "model_version": ex.model_version,
        "response_content": body.pop("response_content"),
        "time": format_time(ex.when),
        **body,
        "response_status": str(ex.status),
        **_served_by(ex),
    }
    if ex.upstream_seconds is not None:
        record["upstream_ms"] = round(ex.upstream_seconds * 1000, 3)
    if ex.extra and ex.extra.get("mirror"):
        record["mirror"] = True
    return record


def feedback_record(request_id: str, model_name: str, model_version: str, body: Any,
                    when: datetime) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "model_name": model_name,
        "model_version": model_version,
        "payload": {"json": body},
        "time": format_time(when),
        "time_us": (when - EPOCH) // MICROSECOND,
    }
