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
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime

import orjson

ACCESS_LOGGER = "mlgate.access"
MAX_QUEUED = 100_000

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


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The line format ``mlgate`` configures on stderr (:func:`configure_logging`)."""
BATCH_INTERVAL = 0.05
"""Seconds the thread sleeps between two batches: one GIL hand-over per batch, not per line."""


class AccessLog:
    """Queue in the request path, a thread that logs. ``start``/``close`` bracket its life.

    The request path appends a tuple to a deque (thread-safe, no lock, no wake-up); the
    thread takes everything queued every ``BATCH_INTERVAL`` seconds. When the logger
    ends in the one stderr handler ``mlgate`` configures (text or JSON), the thread
    formats the batch itself, exactly as that handler's formatter would, and writes it
    with one call (a profile under load showed the per-line ``LogRecord``, formatter and
    flush costing the gateway a fifth of its throughput); any other logging set-up
    (tests' handlers, a file handler, filters) gets one ordinary record per line.
    """

    def __init__(self, logger: logging.Logger | None = None,
                 max_queued: int = MAX_QUEUED) -> None:
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)
        self.max_queued = max_queued
        self.enabled = False
        self.dropped = 0
        self._queue: deque[Entry] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Decide once, from the logger's level, whether lines are written at all."""
        self.enabled = self.logger.isEnabledFor(logging.INFO)
        if self.enabled and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="mlgate-access-log",
                                            daemon=True)
            self._thread.start()

    def record(self, entry: Entry) -> None:
        if len(self._queue) >= self.max_queued:
            self.dropped += 1
            return
        self._queue.append(entry)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the thread."""
        self.enabled = False
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(BATCH_INTERVAL)
            batch = []
            queued = self._queue
            while queued:
                batch.append(queued.popleft())
            if batch:
                try:
                    self._write(batch)
                except Exception:  # a broken handler must not stop the access log
                    logging.getLogger("mlgate").exception("access log lines failed")
            if stopping:
                return

    def _write(self, batch: list[Entry]) -> None:
        fast = _plain_stream(self.logger)
        if fast is None:
            for entry in batch:
                self._emit(entry)
            return
        handler, json_form = fast
        render = _json_line if json_form else _text_line
        name = self.logger.name
        text = "".join([render(entry, name) for entry in batch])
        with handler.lock:  # type: ignore[union-attr]
            handler.stream.write(text)
            handler.flush()

    def _emit(self, entry: Entry) -> None:
        fields = access_fields(entry)
        record = self.logger.makeRecord(self.logger.name, logging.INFO, __file__, 0,
                                        access_message(fields), None, None,
                                        extra={"access": fields})
        record.created = entry[0]
        record.msecs = (entry[0] % 1) * 1000
        self.logger.handle(record)


def _plain_stream(logger: logging.Logger) -> tuple[logging.StreamHandler, bool] | None:
    """The one stream handler the access lines end in, if nothing else would see them
    (no filter, no other handler, a formatter this module can reproduce); else None."""
    if logger.handlers or logger.filters or not logger.propagate:
        return None
    parent = logger.parent
    while parent is not None and not parent.handlers:
        if parent.filters or not parent.propagate:
            return None
        parent = parent.parent
    if parent is None or parent.filters or len(parent.handlers) != 1:
        return None
    handler = parent.handlers[0]
    if type(handler) is not logging.StreamHandler or handler.filters \
            or handler.level > logging.INFO:
        return None
    if parent.parent is not None and parent.propagate:
        return None  # an ancestor higher up would see the lines too
    formatter = handler.formatter
    if isinstance(formatter, JsonFormatter):
        return handler, True
    if type(formatter) is logging.Formatter and formatter._fmt == TEXT_FORMAT \
            and formatter.datefmt is None and formatter.converter is time.localtime \
            and formatter.default_msec_format == "%s,%03d":
        return handler, False
    return None


_asctime_cache: tuple[int, str] = (-1, "")


def _asctime(when: float) -> str:
    """``logging.Formatter``'s default ``asctime`` (local time, ``,mmm``), memoised per second."""
    global _asctime_cache
    second = int(when)
    if _asctime_cache[0] != second:
        _asctime_cache = (second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when)))
    return f"{_asctime_cache[1]},{int((when - second) * 1000):03d}"


def _text_line(entry: Entry, logger: str) -> str:
    return f"{_asctime(entry[0])} INFO {logger}: {access_message(access_fields(entry))}\n"


def _json_line(entry: Entry, logger: str) -> str:
    fields = access_fields(entry)
    out: dict[str, object] = {
        "time": _iso_ms(entry[0]), "level": "info", "logger": logger,
        "message": f"{fields['method']} {fields['path']} {fields['status']}"}
    out.update(fields)
    return orjson.dumps(out, default=str).decode() + "\n"


def _iso_ms(when: float) -> str:
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", ...}``, one object per line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": _iso_ms(record.created),
            "level": record.levelname.lower(), "logger": record.name,
            "message": record.getMessage()}
        access = getattr(record, "access", None)
        if isinstance(access, dict):  # the fields say the rest: a short message
            out["message"] = f"{access['method']} {access['path']} {access['status']}"
            out.update(access)
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()



def configure_logging(level: str, fmt: str = "text") -> None:
    """Log lines on stderr; ``fmt`` ``json`` (``logging.format``) writes one object a line."""
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format=TEXT_FORMAT)
    if fmt == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
