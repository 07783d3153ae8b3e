"""The record writer: spool first, upload in the background, never lose what was accepted.

The gateway hands over finished exchanges with :meth:`RecordWriter.offer`,
which never waits and never raises; records are built, serialised and
appended to the spool by the writer's background task, a batch at a time (an
exchange waits at most ``EXCHANGE_BATCH_DELAY`` for others). Feedback uses
:meth:`RecordWriter.write_durable`, which returns once the record is synced
to the spool: concurrent callers share one fsync (group commit).

A *tap* (optional) sees every record of the chosen kinds right after it was
appended to the spool, with the key of the object it will be uploaded as and its
line number there: a reader of the bucket can then tell a record it already saw
from a new one (the live join of :mod:`feedback` reads records this way, before
they reach the bucket). The tap runs on the event loop and must be quick; an
exception in it is logged, never raised.

A segment (one partition: kind, model, version, UTC hour) is sealed when it
holds ``flush_records`` records or ``flush_bytes`` bytes, ``flush_interval``
seconds after its first record, and at shutdown. Sealed segments are uploaded
by ``upload_concurrency`` workers, each retrying with exponential backoff and
jitter until the bucket takes the object, then deleted from the spool.

The spool is bounded by ``spool_max_bytes``. Request logs may fill it only up
to ``1 - feedback_reserve`` of that; beyond, they are dropped and counted.
Feedback that does not fit raises :class:`SpoolFull` (a ``StorageError``), so
the client is told to retry rather than being acknowledged and lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from .backends.base import Backend, StorageError
from .records import (
    DEFAULT_REDACTED_HEADERS,
    KINDS,
    REQUEST_RESPONSE,
    RESPONSE_BODY,
    Exchange,
    request_response_record,
    response_body_record,
)
from .retry import backoff_delay
from .segments import Partition, hour_of
from .spool import Segment, Spool, SpoolFull
from .stats import WriterStats

log = logging.getLogger("mlgate.storage")

CHUNK = 256  # exchanges spooled between two looks at waiting feedback
EXCHANGE_BATCH_DELAY = 0.005
"""Seconds an offered exchange may wait for others, so records are built and appended a
batch at a time (one wake-up and one write), not one request at a time."""
DROP_WARN_EVERY = 10.0  # seconds between two warnings about dropped request logs

Tap = Callable[[str, str, int, list[dict[str, Any]]], None]
"""``tap(kind, object_key, first_line, records)``: ``records`` were appended to the spool
segment that becomes ``object_key``, as its lines ``first_line``, ``first_line + 1``, ..."""


@dataclass(frozen=True, slots=True)
class WriterConfig:
    prefix: str = ""
    flush_records: int = 1000
    flush_bytes: int = 4 << 20
    flush_interval: float = 1.0
    max_pending_records: int = 100_000
    spool_max_bytes: int = 1 << 30
    feedback_reserve: float = 0.1
    upload_concurrency: int = 4
    retry_base: float = 0.2
    retry_cap: float = 30.0
    shutdown_timeout: float = 10.0
    redacted_headers: frozenset[str] = DEFAULT_REDACTED_HEADERS

    def __post_init__(self) -> None:
        if min(self.flush_records, self.flush_bytes, self.max_pending_records,
               self.spool_max_bytes, self.upload_concurrency) < 1:
            raise ValueError("flush_records, flush_bytes, max_pending_records, "
                             "spool_max_bytes and upload_concurrency must be >= 1")
        if self.flush_interval <= 0:
            raise ValueError("flush_interval must be > 0")
        if not 0 <= self.feedback_reserve < 1:
            raise ValueError("feedback_reserve must be in [0, 1)")
        if self.retry_base <= 0 or self.retry_cap < self.retry_base:
            raise ValueError("retry_base must be > 0 and retry_cap >= retry_base")
        if self.shutdown_timeout < 0:
            raise ValueError("shutdown_timeout must be >= 0")

    @property
    def logs_max_bytes(self) -> int:
        """Spool bytes beyond which request logs are dropped."""
        return int(self.spool_max_bytes * (1 - self.feedback_reserve))


@dataclass(slots=True)
class _Durable:
    partition: Partition
    line: bytes
    done: asyncio.Future[None]
    record: dict[str, Any]


class RecordWriter:
    def __init__(self, backend: Backend, spool_dir: str | Path,
                 config: WriterConfig | None = None, tap: Tap | None = None,
                 tap_kinds: Collection[str] = KINDS) -> None:
        self.backend = backend
        self.config = config or WriterConfig()
        self.tap = tap
        self.tap_kinds = frozenset(tap_kinds) if tap is not None else frozenset()
        self.spool = Spool(spool_dir)
        self.stats = WriterStats(queue_capacity=self.config.max_pending_records)
        self._exchanges: deque[Exchange] = deque()
        self._durable: list[_Durable] = []
        self._durable_bytes = 0
        self._flush_waiters: list[asyncio.Future[None]] = []
        self._uploads: asyncio.Queue[Segment] = asyncio.Queue()
        self._sealing: list[Segment] = []
        self._unuploaded = 0  # sealed segments not yet uploaded (queued or in flight)
        self._partitions: dict[tuple[str, str, str, str], Partition] = {}
        self._wake = asyncio.Event()
        self._batching = False
        self._spool_task: asyncio.Task[None] | None = None
        self._upload_tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._closed = False
        self._last_drop_warning = 0.0

    # -- producers ---------------------------------------------------------

    def offer(self, exchange: Exchange) -> bool:
        """Queue an exchange for logging; ``False`` (and counted) when it cannot be kept."""
        if self._closing:
            return self._drop_exchange("shutting_down", "the writer is shutting down")
        queued = len(self._exchanges)
        if queued >= self.config.max_pending_records:
            return self._drop_exchange("queue_full", "the in-memory queue is full")
        if self.spool.size >= self.config.logs_max_bytes:
            return self._drop_exchange("spool_full", "the spool is full")
        self._exchanges.append(exchange)
        self.stats.queue_length = queued + 1
        if not self._batching:  # the first of a batch: spool it (and what follows) shortly
            try:
                asyncio.get_running_loop().call_later(EXCHANGE_BATCH_DELAY, self._spool_batch)
                self._batching = True
            except RuntimeError:  # not on the loop: the next wake-up takes it
                self._wake.set()
        return True

    def _spool_batch(self) -> None:
        self._batching = False
        self._wake.set()

    async def write_durable(self, kind: str, record: dict[str, Any], when: datetime) -> None:
        """Spool one record and return once it is synced to disk.

        Raises ``SpoolFull`` when there is no room, ``StorageError`` when the
        writer is closing or the disk fails, ``ValueError`` for an unsafe
        model name or version.
        """
        if self._closing:
            raise StorageError("the record writer is shutting down")
        partition = self._partition(kind, record["model_name"], record["model_version"],
                                    hour_of(when))
        line = orjson.dumps(record) + b"\n"
        if self.spool.size + self._durable_bytes + len(line) > self.config.spool_max_bytes:
            self.stats.refused[kind] += 1
            log.warning("spool full (%d bytes): %s record refused, client told to retry",
                        self.spool.size, kind)
            raise SpoolFull("the local spool is full while the bucket catches up")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._durable.append(_Durable(partition, line, done, record))
        self._durable_bytes += len(line)
        self._wake.set()
        await done

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Lock the spool, queue an earlier run's segments for upload first, start working."""
        if self._spool_task is not None:
            return
        leftovers = await asyncio.to_thread(self.spool.open)
        if leftovers:
            log.info("uploading %d spool segment(s) (%d bytes) left by an earlier run",
                     len(leftovers), self.spool.size)
        for seg in leftovers:
            self._enqueue(seg)
        self._update_gauges()
        self._spool_task = asyncio.create_task(self._run_spool(), name="mlgate-spool")
        self._upload_tasks = [
            asyncio.create_task(self._run_uploads(), name=f"mlgate-upload-{i}")
            for i in range(self.config.upload_concurrency)]

    async def flush(self) -> None:
        """Seal every active segment now and wait until the spool is uploaded."""
        if self._spool_task is None:
            raise StorageError("the record writer is not started")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(done)
        self._wake.set()
        await done
        await self._uploads.join()

    async def close(self) -> None:
        """Spool what is queued, then upload for at most ``shutdown_timeout`` seconds.

        Whatever is not uploaded by then stays in the spool for the next start.
        """
        if self._closed:
            return
        if self._spool_task is None:
            await self.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_timeout
        self._closing = True
        self._wake.set()
        assert self._spool_task is not None
        await self._spool_task
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._uploads.join(), max(0.0, deadline - loop.time()))
        for task in self._upload_tasks:
            task.cancel()
        await asyncio.gather(*self._upload_tasks, return_exceptions=True)
        self._update_gauges()
        if self.stats.spool_segments:
            log.warning("%d segment(s) (%d bytes) not uploaded within %.1fs stay in the spool "
                        "%s for the next start", self.stats.spool_segments,
                        self.stats.spool_bytes, self.config.shutdown_timeout,
                        self.spool.directory)
        await self.backend.close()
        await asyncio.to_thread(self.spool.close)
        self._closed = True

    # -- spooling ----------------------------------------------------------

    async def _run_spool(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_seal_in())
            self._wake.clear()
            closing = self._closing
            try:
                await self._commit_durable()
                await self._spool_exchanges()
                await self._commit_durable()
                force = closing or bool(self._flush_waiters)
                await self._seal(force=force)
            except Exception:  # a bug here must not stop logging for good
                log.exception("spooling records failed")
            if self._flush_waiters and not self.spool.active():
                waiters, self._flush_waiters = self._flush_waiters, []
                _resolve(waiters, None)
            if closing and not self._exchanges and not self._durable:
                _resolve(self._flush_waiters, None)
                return

    def _next_seal_in(self) -> float | None:
        active = self.spool.active()
        if not active:
            return None
        oldest = min(seg.opened_at for seg in active)
        return max(0.0, oldest + self.config.flush_interval - time.monotonic())

    async def _commit_durable(self) -> None:
        while self._durable:
            batch, self._durable = self._durable, []
            self._durable_bytes -= sum(len(item.line) for item in batch)
            touched: dict[int, Segment] = {}
            stored: list[_Durable] = []
            groups: dict[Partition, list[_Durable]] = {}
            for item in batch:
                groups.setdefault(item.partition, []).append(item)
            for partition, items in groups.items():  # one write per segment, not per record
                while items:
                    current = self.spool.current(partition)
                    room = max(1, self.config.flush_records - (current.records if current else 0))
                    part, items = items[:room], items[room:]
                    try:
                        seg = self.spool.append(partition, b"".join(i.line for i in part))
                    except StorageError as exc:
                        _resolve([i.done for i in part], exc)
                        continue
                    touched[id(seg)] = seg
                    stored.extend(part)
                    if partition.kind in self.tap_kinds:
                        self._tap(partition.kind, seg, len(part), [i.record for i in part])
                    self._detach_if_full(seg)
            self.stats.spool_syncs += 1
            try:
                await asyncio.to_thread(Spool.sync, list(touched.values()))
            except OSError as exc:
                _resolve([i.done for i in stored], StorageError(f"cannot sync the spool: {exc}"))
                continue
            for item in stored:
                self.stats.spooled[item.partition.kind] += 1
            _resolve([i.done for i in stored], None)
            self._update_gauges()

    async def _spool_exchanges(self) -> None:
        redacted = self.config.redacted_headers
        limit = self.config.logs_max_bytes
        tap_kinds = self.tap_kinds
        while self._exchanges:
            groups: dict[Partition, list[bytes]] = {}
            tapped: dict[Partition, list[dict[str, Any]]] = {}
            size = self.spool.size
            for _ in range(min(CHUNK, len(self._exchanges))):
                ex = self._exchanges.popleft()
                hour = hour_of(ex.when)
                for kind in (REQUEST_RESPONSE, RESPONSE_BODY):
                    try:
                        partition = self._partition(kind, ex.model_name, ex.model_version, hour)
                    except ValueError as exc:
                        self._drop(kind, 1, "invalid", str(exc))
                        continue
                    record = (request_response_record(ex, redacted) if kind == REQUEST_RESPONSE
                              else response_body_record(ex))
                    line = orjson.dumps(record) + b"\n"
                    if size + len(line) > limit:
                        self._drop(kind, 1, "spool_full", "the spool is full")
                        continue
                    size += len(line)
                    groups.setdefault(partition, []).append(line)
                    if kind in tap_kinds:
                        tapped.setdefault(partition, []).append(record)
            for partition, lines in groups.items():
                self._append_lines(partition, lines, tapped.get(partition))
            self._update_gauges()
            if self._durable:
                await self._commit_durable()
            await asyncio.sleep(0)

    def _append_lines(self, partition: Partition, lines: list[bytes],
                      records: list[dict[str, Any]] | None = None) -> None:
        """Append in as few writes as the segment size limits allow; ``records`` (the
        records of ``lines``, one each) go to the tap."""
        while lines:
            current = self.spool.current(partition)
            room = max(1, self.config.flush_records - (current.records if current else 0))
            part, lines = lines[:room], lines[room:]
            try:
                seg = self.spool.append(partition, b"".join(part))
            except StorageError as exc:
                self._drop(partition.kind, len(part) + len(lines), "spool_error", str(exc))
                return
            self.stats.spooled[partition.kind] += len(part)
            if records is not None:
                self._tap(partition.kind, seg, len(part), records[:room])
                records = records[room:]
            self._detach_if_full(seg)

    def _tap(self, kind: str, seg: Segment, count: int, records: list[dict[str, Any]]) -> None:
        """Hand records just appended (the last ``count`` lines of ``seg``) to the tap."""
        assert self.tap is not None
        if seg.key is None:
            seg.key = seg.name.object_key(self.config.prefix)
        try:
            self.tap(kind, seg.key, seg.records - count, records)
        except Exception:  # the tap's bug must not stop the spool
            log.exception("the record tap failed")

    def _detach_if_full(self, seg: Segment) -> None:
        if seg.records >= self.config.flush_records or seg.size >= self.config.flush_bytes:
            self.spool.detach(seg)
            self._sealing.append(seg)

    async def _seal(self, *, force: bool) -> None:
        now = time.monotonic()
        for seg in self.spool.active():
            if force or now - seg.opened_at >= self.config.flush_interval:
                self.spool.detach(seg)
                self._sealing.append(seg)
        if not self._sealing:
            return
        batch = list(self._sealing)
        self._sealing.clear()
        await asyncio.to_thread(_seal_all, batch)
        for seg in batch:
            self._enqueue(seg)
        self._update_gauges()

    def _enqueue(self, seg: Segment) -> None:
        self._unuploaded += 1
        self._uploads.put_nowait(seg)

    # -- uploading ---------------------------------------------------------

    async def _run_uploads(self) -> None:
        while True:
            seg = await self._uploads.get()
            try:
                await self._upload(seg)
            except Exception:  # keep the worker; the segment stays for the next start
                log.exception("uploading spool segment %s failed", seg.path.name)
            finally:
                self._uploads.task_done()

    async def _upload(self, seg: Segment) -> None:
        kind = seg.name.partition.kind
        try:
            checked = await asyncio.to_thread(Spool.read, seg)
        except FileNotFoundError:
            checked = None
        if checked is not None and checked.torn:
            self.stats.torn_lines += checked.torn
            log.warning("skipped %d torn or corrupt line(s) in spool segment %s",
                        checked.torn, seg.path.name)
        if checked is not None and checked.records:
            key = seg.name.object_key(self.config.prefix)
            attempt = 0
            while True:
                try:
                    await self.backend.put(key, checked.data)
                    break
                except Exception as exc:  # StorageError, or a backend bug: keep the segment
                    self.stats.upload_failures += 1
                    delay = backoff_delay(attempt, self.config.retry_base, self.config.retry_cap)
                    if attempt in (0, 3) or attempt % 10 == 0:
                        log.warning("upload of %s failed (attempt %d, retrying in %.1fs): %s",
                                    key, attempt + 1, delay, exc,
                                    exc_info=not isinstance(exc, StorageError))
                    attempt += 1
                    await asyncio.sleep(delay)
            self.stats.objects += 1
            self.stats.written[kind] += checked.records
        await asyncio.to_thread(Spool.unlink, seg)
        self.spool.forget(seg)
        self._unuploaded -= 1
        self._update_gauges()

    # -- bookkeeping -------------------------------------------------------

    def _partition(self, kind: str, model_name: str, model_version: str, hour: str) -> Partition:
        key = (kind, model_name, model_version, hour)
        partition = self._partitions.get(key)
        if partition is None:
            if len(self._partitions) > 10_000:
                self._partitions.clear()
            partition = self._partitions[key] = Partition(*key)
        return partition

    def _drop_exchange(self, why: str, reason: str) -> bool:
        self._drop(REQUEST_RESPONSE, 1, why, reason)
        self._drop(RESPONSE_BODY, 1, why, reason)
        return False

    def _drop(self, kind: str, count: int, why: str, reason: str) -> None:
        """``count`` records of ``kind`` given up; ``why`` keys ``drop_reasons``."""
        self.stats.dropped[kind] += count
        self.stats.drop_reasons[why] += count
        now = time.monotonic()
        if now - self._last_drop_warning >= DROP_WARN_EVERY:
            self._last_drop_warning = now
            log.warning("dropping request logs (%s): %s dropped so far", reason,
                        dict(self.stats.dropped))

    def _update_gauges(self) -> None:
        self.stats.queue_length = len(self._exchanges)
        self.stats.spool_bytes = self.spool.size
        self.stats.spool_segments = (len(self.spool.active()) + len(self._sealing)
                                     + self._unuploaded)


def _seal_all(segments: list[Segment]) -> None:
    for seg in segments:
        Spool.seal(seg)


def _resolve(waiters: list[asyncio.Future[None]], error: Exception | None) -> None:
    for fut in waiters:
        if fut.done():
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)
