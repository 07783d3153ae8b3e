"""The batching record writer.

The gateway hands over finished exchanges with :meth:`RecordWriter.offer`,
which never waits and never raises; records are built and serialised in the
writer's background task. Feedback uses :meth:`RecordWriter.write_durable`,
which returns only after the record's object is written: concurrent callers
share one write per partition (group commit).

A batch is flushed when it holds ``flush_records`` records or ``flush_bytes``
bytes, every ``flush_interval`` seconds, at once when a durable record waits,
and on :meth:`close`. Each flush writes one JSON Lines object per partition
(kind, model, version, hour).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from .backends.base import Backend, StorageError
from .keys import UnsafeSegmentError, object_name, partition_prefix
from .records import (
    DEFAULT_REDACTED_HEADERS,
    REQUEST_RESPONSE,
    RESPONSE_BODY,
    Exchange,
    request_response_record,
    response_body_record,
)

log = logging.getLogger("mlgate.storage")

Partition = tuple[str, str, str, str]  # (kind, model_name, model_version, YYYYMMDDHH)


@dataclass(frozen=True, slots=True)
class WriterConfig:
    prefix: str = ""
    flush_records: int = 1000
    flush_bytes: int = 4 << 20
    flush_interval: float = 1.0
    max_pending_records: int = 100_000
    put_attempts: int = 5
    redacted_headers: frozenset[str] = DEFAULT_REDACTED_HEADERS

    def __post_init__(self) -> None:
        if self.flush_records < 1 or self.flush_bytes < 1 or self.max_pending_records < 1:
            raise ValueError("flush_records, flush_bytes and max_pending_records must be >= 1")
        if self.flush_interval <= 0:
            raise ValueError("flush_interval must be > 0")
        if self.put_attempts < 1:
            raise ValueError("put_attempts must be >= 1")


@dataclass(slots=True)
class WriterStats:
    written: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dropped: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    objects: int = 0
    put_failures: int = 0


@dataclass(slots=True)
class _Durable:
    partition: Partition
    when: datetime
    line: bytes
    done: asyncio.Future[None]


class RecordWriter:
    def __init__(self, backend: Backend, config: WriterConfig | None = None) -> None:
        self.backend = backend
        self.config = config or WriterConfig()
        self.stats = WriterStats()
        self._exchanges: list[Exchange] = []
        self._durable: list[_Durable] = []
        self._retry: dict[Partition, list[bytes]] = {}
        self._next_n: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # -- producers -------------------------------------------------------

    def offer(self, exchange: Exchange) -> bool:
        """Queue an exchange for logging; ``False`` (and counted) when the queue is full."""
        if self._closing or len(self._exchanges) >= self.config.max_pending_records:
            self.stats.dropped[REQUEST_RESPONSE] += 1
            self.stats.dropped[RESPONSE_BODY] += 1
            if self.stats.dropped[REQUEST_RESPONSE] in (1, 1000) or \
                    self.stats.dropped[REQUEST_RESPONSE] % 100_000 == 0:
                log.warning("request log queue full: %d exchanges dropped so far",
                            self.stats.dropped[REQUEST_RESPONSE])
            return False
        self._exchanges.append(exchange)
        if len(self._exchanges) >= self.config.flush_records:
            self._wake.set()
        return True

    async def write_durable(self, kind: str, record: dict[str, Any], when: datetime) -> None:
        """Write one record and return once its object is stored (raises ``StorageError``)."""
        if self._closing:
            raise StorageError("the record writer is shutting down")
        partition = (kind, record["model_name"], record["model_version"], f"{when:%Y%m%d%H}")
        partition_prefix(self.config.prefix, kind, partition[1], partition[2], when)  # validates
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._durable.append(_Durable(partition, when, orjson.dumps(record) + b"\n", done))
        self._wake.set()
        await done

    # -- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mlgate-record-writer")

    async def close(self) -> None:
        """Flush everything queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        else:
            await self.flush()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.flush_interval)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # a bug here must not stop logging for good
                log.exception("record writer flush failed")
            if self._closing and not (self._exchanges or self._durable):
                if self._retry:
                    lost = sum(len(v) for v in self._retry.values())
                    log.error("record writer stopped with %d records it could not store", lost)
                return

    # -- flushing --------------------------------------------------------

    async def flush(self) -> None:
        exchanges, self._exchanges = self._exchanges, []
        durable, self._durable = self._durable, []
        groups: dict[Partition, list[bytes]] = defaultdict(list)
        hours: dict[Partition, datetime] = {}
        for partition, lines in self._retry.items():
            groups[partition].extend(lines)
        self._retry = {}
        redacted = self.config.redacted_headers
        for ex in exchanges:
            hour = f"{ex.when:%Y%m%d%H}"
            for kind, record in ((REQUEST_RESPONSE, request_response_record(ex, redacted)),
                                 (RESPONSE_BODY, response_body_record(ex))):
                part = (kind, ex.model_name, ex.model_version, hour)
                groups[part].append(orjson.dumps(record) + b"\n")
                hours.setdefault(part, ex.when)
        waiters: dict[Partition, list[asyncio.Future[None]]] = defaultdict(list)
        for item in durable:
            groups[item.partition].append(item.line)
            hours.setdefault(item.partition, item.when)
            waiters[item.partition].append(item.done)
        await asyncio.gather(*(
            self._write_group(part, lines, hours.get(part), waiters.get(part, []))
            for part, lines in groups.items()
        ))

    async def _write_group(self, part: Partition, lines: list[bytes], when: datetime | None,
                           waiters: list[asyncio.Future[None]]) -> None:
        kind, model_name, model_version, hour = part
        when = when or datetime.strptime(hour, "%Y%m%d%H")
        try:
            prefix = partition_prefix(self.config.prefix, kind, model_name, model_version, when)
        except UnsafeSegmentError as exc:
            log.error("dropping %d %s records: %s", len(lines), kind, exc)
            self.stats.dropped[kind] += len(lines)
            _resolve(waiters, exc)
            return
        data = b"".join(lines)
        error: Exception | None = None
        for attempt in range(self.config.put_attempts):
            try:
                key = prefix + object_name(when, await self._allocate_n(prefix, hour))
                await self.backend.put(key, data)
            except StorageError as exc:
                error = exc
                self.stats.put_failures += 1
                if not exc.retryable:
                    break
                await asyncio.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
                continue
            self.stats.objects += 1
            self.stats.written[kind] += len(lines)
            _resolve(waiters, None)
            return
        log.warning("cannot store %d %s records under %s: %s", len(lines), kind, prefix, error)
        if waiters:
            # Durable writers are told, and retry themselves: keeping the lines would duplicate.
            _resolve(waiters, error or StorageError("write failed"))
        elif self._closing or self._retry_size() + len(lines) > self.config.max_pending_records:
            self.stats.dropped[kind] += len(lines)
        else:
            self._retry.setdefault(part, []).extend(lines)

    def _retry_size(self) -> int:
        return sum(len(v) for v in self._retry.values())

    async def _allocate_n(self, prefix: str, hour: str) -> int:
        """Next object number for this partition-hour: one past the highest stored one."""
        slot = prefix + hour
        n = self._next_n.get(slot)
        if n is None:
            n = 0
            for key in await self.backend.list(prefix + hour + "_"):
                stem = key.rpartition("_")[2].removesuffix(".json")
                if stem.isdigit():
                    n = max(n, int(stem) + 1)
        self._next_n[slot] = n + 1
        return n


def _resolve(waiters: list[asyncio.Future[None]], error: Exception | None) -> None:
    for fut in waiters:
        if fut.done():
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)
