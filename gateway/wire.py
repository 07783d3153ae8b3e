"""Answers as bytes: the status line, headers and body the fast server writes (pure).

The same header rules as aiohttp's ``web.Response`` — ``Content-Length`` from the
body, ``Content-Type: application/octet-stream`` for an untyped non-empty body,
``Date``, ``Server`` when the answer has none, ``Connection: close`` when the
connection ends, no body for ``HEAD``/1xx/204/304 — so a client cannot tell
which of the two servers answered. Status lines are built once per status and
``Date`` once per second.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus

from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict

_NO_BODY_STATUS = frozenset({204, 304})
_SKIPPED = frozenset({"content-length", "transfer-encoding", "connection"})
_status_lines: dict[int, str] = {}
_date: tuple[int, str] = (0, "")


class HeaderInjection(ValueError):
    """A header name or value would break the answer's framing (CR or LF)."""


def status_line(status: int) -> str:
    line = _status_lines.get(status)
    if line is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
        line = _status_lines[status] = f"HTTP/1.1 {status} {reason}\r\n"
    return line


def http_date() -> str:
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True))
    return _date[1]


def encode_answer(status: int, headers: object, body: bytes, *, head: bool, keep_alive: bool,
                  http10: bool = False) -> bytes:
    """The answer on the wire. ``headers``: a multi-mapping (``items()``, ``in``);
    ``head``: the request was ``HEAD`` (headers as for GET, no body)."""
    lines = [status_line(status)]
    append = lines.append
    if isinstance(headers, CIMultiDict):  # lookups without a pass over the headers
        has_type = "Content-Type" in headers
        has_date = "Date" in headers
        has_server = "Server" in headers
        clean = not ("Content-Length" in headers or "Transfer-Encoding" in headers
                     or "Connection" in headers)
    else:
        keys = {name.lower() for name in headers}  # type: ignore[attr-defined]
        has_type, has_date = "content-type" in keys, "date" in keys
        has_server, clean = "server" in keys, not keys & _SKIPPED
    if clean:
        lines += [f"{name}: {value}\r\n" for name, value in headers.items()]  # type: ignore[attr-defined]
    else:
        lines += [f"{name}: {value}\r\n" for name, value in headers.items()  # type: ignore[attr-defined]
                  if name.lower() not in _SKIPPED]
    empty = status < 200 or status in _NO_BODY_STATUS
    if not empty:
        append(f"Content-Length: {len(body)}\r\n")
        if body and not has_type:
            append("Content-Type: application/octet-stream\r\n")
    if not has_date:
        append(f"Date: {http_date()}\r\n")
    if not has_server:
        append(f"Server: {SERVER_SOFTWARE}\r\n")
    if not keep_alive:
        if not http10:
            append("Connection: close\r\n")
    elif http10:
        append("Connection: keep-alive\r\n")
    append("\r\n")
    text = "".join(lines)
    if text.count("\n") != len(lines) or text.count("\r") != len(lines):
        raise HeaderInjection("a header of the answer contains a line break")
    data = text.encode("utf-8", "surrogateescape")
    if empty or head or not body:
        return data
    return data + body
