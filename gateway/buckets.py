"""Token buckets as GCRA cells: one float per bucket, in this process or shared by all of them.

A token bucket of ``burst`` tokens refilled at ``rate`` per second is kept as its
*theoretical arrival time* (GCRA, the generic cell rate algorithm of ATM networks, which
Envoy's and Redis's limiters also use): one number per bucket, and a bucket whose time is
in the past is simply full — so an idle bucket needs no state at all and any cell in that
state may be reused for another key. :func:`gcra` is the pure decision.

Where the cells live:

* :class:`LocalBuckets` — a dict in this process (one gateway process);
* :class:`SharedBuckets` — a fixed table in a memory-mapped file that every process of
  ``mlgate up --workers N`` maps, so a caller's quota is the same whichever process its
  connection landed on (a client's keep-alive connection stays on one process, so a quota
  divided by N would give it 1/N of its due). A cell is found by a stable hash of the key
  (open addressing over ``PROBE`` cells) and updated under an ``fcntl`` byte-range lock
  of those cells: exact across processes, about a microsecond per check. The clock is
  ``CLOCK_MONOTONIC``, one for the whole machine. When every probed cell holds another
  live bucket (a flood of distinct keys), the check falls back to a bucket of this process
  with ``1/processes`` of the quota, and says so once in the log.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import mmap
import os
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger("mlgate.gateway.ratelimit")

CELL = struct.Struct("<Qd")  # key fingerprint (0: free), theoretical arrival time
PROBE = 8
DEFAULT_CELLS = 1 << 16
LOCAL_MAX_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class Take:
    """One check of one bucket: allowed, the whole tokens left, seconds until the bucket is
    full again, and (when refused) seconds until one token is back."""

    allowed: bool
    remaining: int
    reset: float
    retry_after: float


def gcra(tat: float, now: float, interval: float, burst: int) -> tuple[Take, float]:
    """Take one token from a bucket of ``burst`` tokens refilled one per ``interval``
    seconds whose theoretical arrival time is ``tat``; the verdict and the new time."""
    tolerance = burst * interval
    base = tat if tat > now else now
    after = base + interval
    if after - now > tolerance + 1e-9:
        wait = after - tolerance - now
        return Take(False, 0, max(0.0, tat - now), wait), tat
    left = int((tolerance - (after - now)) / interval + 1e-9)
    return Take(True, left, after - now, 0.0), after


class Buckets(Protocol):
    def take(self, key: bytes, interval: float, burst: int) -> Take:
        """Take one token (when there is one)."""
        ...

    def peek(self, key: bytes, interval: float, burst: int) -> Take:
        """Would a token be there? (Nothing is taken.)"""
        ...


class LocalBuckets:
    """Buckets of this process: a bounded dict (the least recently used key goes first)."""

    def __init__(self, max_keys: int = LOCAL_MAX_KEYS, share: int = 1) -> None:
        self.max_keys = max_keys
        self.share = max(1, share)
        """Divide every quota by this (the shared table's fallback with N processes)."""
        self._cells: OrderedDict[bytes, float] = OrderedDict()

    def take(self, key: bytes, interval: float, burst: int) -> Take:
        return self._check(key, interval, burst, True)

    def peek(self, key: bytes, interval: float, burst: int) -> Take:
        return self._check(key, interval, burst, False)

    def _check(self, key: bytes, interval: float, burst: int, write: bool) -> Take:
        now = time.monotonic()
        if self.share > 1:
            interval, burst = interval * self.share, max(1, burst // self.share)
        cells = self._cells
        take, tat = gcra(cells.get(key, 0.0), now, interval, burst)
        if take.allowed and write:
            cells[key] = tat
            cells.move_to_end(key)
            if len(cells) > self.max_keys:
                cells.popitem(last=False)
        return take


class SharedBuckets:
    """The table in ``path`` (created by :meth:`create`, opened by :meth:`open`)."""

    def __init__(self, path: Path, fd: int, cells: int, processes: int) -> None:
        self.path = path
        self._fd = fd
        self._cells = cells
        self._map = mmap.mmap(fd, cells * CELL.size)
        self._fallback = LocalBuckets(share=processes)
        self._warned = False

    @classmethod
    def create(cls, path: Path, processes: int, cells: int = DEFAULT_CELLS) -> SharedBuckets:
        """A new, empty table (any old one is replaced): the primary, before its workers."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.ftruncate(fd, cells * CELL.size)
        os.replace(tmp, path)
        return cls(path, fd, cells, processes)

    @classmethod
    def open(cls, path: Path, processes: int) -> SharedBuckets:
        """The table the primary created (a worker)."""
        fd = os.open(path, os.O_RDWR)
        size = os.fstat(fd).st_size
        if size == 0 or size % CELL.size:
            os.close(fd)
            raise ValueError(f"{path} is not a rate limit table")
        return cls(path, fd, size // CELL.size, processes)

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._map.close()
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def take(self, key: bytes, interval: float, burst: int) -> Take:
        return self._check(key, interval, burst, True)

    def peek(self, key: bytes, interval: float, burst: int) -> Take:
        return self._check(key, interval, burst, False)

    def _check(self, key: bytes, interval: float, burst: int, write: bool) -> Take:
        digest = hashlib.blake2b(key, digest_size=8).digest()
        fingerprint = int.from_bytes(digest, "little") or 1
        first = fingerprint % self._cells
        start = min(first, self._cells - PROBE)  # the probed cells are contiguous
        offset, length = start * CELL.size, PROBE * CELL.size
        mem = self._map
        fcntl.lockf(self._fd, fcntl.LOCK_EX, length, offset, os.SEEK_SET)
        try:
            now = time.monotonic()
            free = -1
            for i in range(PROBE):
                at = offset + i * CELL.size
                owner, tat = CELL.unpack_from(mem, at)
                if owner == fingerprint:
                    take, after = gcra(tat, now, interval, burst)
                    if take.allowed and write:
                        CELL.pack_into(mem, at, fingerprint, after)
                    return take
                if free < 0 and (owner == 0 or tat <= now):  # empty, or a full bucket
                    free = at
            if free >= 0:
                take, after = gcra(0.0, now, interval, burst)
                if write:
                    CELL.pack_into(mem, free, fingerprint, after)
                return take
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, length, offset, os.SEEK_SET)
        if not self._warned:
            self._warned = True
            log.warning("the shared rate limit table %s is full around a key: such keys are "
                        "limited per process (quota divided by the processes) meanwhile",
                        self.path)
        return self._fallback._check(key, interval, burst, write)
