"""The access log: one line per request at info level, formatted and written off the loop.

The request path only puts a tuple on a queue (:meth:`AccessLog.record`, well under a
microsecond); a thread turns each tuple into a record of the ``mlgate.access`` logger,
so formatting and writing never block the event loop. The queue is bounded: lines
beyond ``max_queued`` (a stalled stderr) are counted in ``dropped``, not kept.

:class:`JsonFormatter` renders any log record as one JSON object per line
(``logging.format: json``); an access record's fields are top-level keys.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import UTC, datetime

import orjson

ACCESS_LOGGER = "mlgate.access"
MAX_QUEUED = 100_000

_STOP = None
Entry = tuple[float, str, str, int, float, float | None, str, str, str, str, str]
"""when, method, path, status, seconds, upstream seconds, request id, deployment, route,
remote address, subject."""


def access_fields(entry: Entry) -> dict[str, object]:
    """The JSON fields of one access line; empty values are left out."""
    (_when, method, path, status, seconds, upstream, request_id, deployment, route, remote,
     subject) = entry
    fields: dict[str, object] = {
        "request_id": request_id, "method": method, "path": path, "status": status,
        "duration_ms": round(seconds * 1000, 3)}
    if upstream is not None:
        fields["upstream_ms"] = round(upstream * 1000, 3)
    for key, value in (("deployment", deployment), ("route", route), ("remote", remote),
                       ("subject", subject)):
        if value:
            fields[key] = value
    return fields


def access_message(fields: dict[str, object]) -> str:
    """The text form: ``POST /model/a/api/model/invoke 200 3.2ms upstream=2.9ms ...``."""
    parts = [f"{fields['method']} {fields['path']} {fields['status']} "
             f"{fields['duration_ms']:.1f}ms"]
    if "upstream_ms" in fields:
        parts.append(f"upstream={fields['upstream_ms']:.1f}ms")
    for key in ("deployment", "route", "request_id", "remote", "subject"):
        if key in fields:
            parts.append(f"{key}={fields[key]}")
    return " ".join(parts)


class AccessLog:
    """Queue in the request path, a thread that logs. ``start``/``close`` bracket its life."""

    def __init__(self, logger: logging.Logger | None = None,
                 max_queued: int = MAX_QUEUED) -> None:
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)
        self.max_queued = max_queued
        self.enabled = False
        self.dropped = 0
        self._queue: queue.SimpleQueue[Entry | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Decide once, from the logger's level, whether lines are written at all."""
        self.enabled = self.logger.isEnabledFor(logging.INFO)
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mlgate-access-log",
                                            daemon=True)
            self._thread.start()

    def record(self, entry: Entry) -> None:
        if self._queue.qsize() >= self.max_queued:
            self.dropped += 1
            return
        self._queue.put(entry)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the thread."""
        self.enabled = False
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is _STOP:
                return
            try:
                self._emit(entry)
            except Exception:  # a broken handler must not stop the access log
                logging.getLogger("mlgate").exception("access log line failed")

    def _emit(self, entry: Entry) -> None:
        fields = access_fields(entry)
        record = self.logger.makeRecord(self.logger.name, logging.INFO, __file__, 0,
                                        access_message(fields), None, None,
                                        extra={"access": fields})
        record.created = entry[0]
        record.msecs = (entry[0] % 1) * 1000
        self.logger.handle(record)


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...}``, one object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage()}
        access = getattr(record, "access", None)
        if isinstance(access, dict):  # the fields say the rest: a short message
            out["message"] = f"{access['method']} {access['path']} {access['status']}"
            out.update(access)
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()

