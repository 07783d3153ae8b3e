"""The local spool: append-only segment files under ``<data_dir>/spool/``.

Every record lands here before any upload. One process owns a spool
directory at a time (an ``flock`` on ``.lock``); a second process pointed at
the same directory is refused at start rather than allowed to interleave
writes.

Methods marked *blocking* do disk syncs and are meant for a worker thread;
the others are quick page-cache writes done on the event loop. Counters are
only changed on the event loop's thread.
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .backends.base import StorageError
from .segments import (
    CheckedSegment,
    Partition,
    SegmentName,
    check_lines,
    new_run_id,
    object_number,
    parse_segment_name,
)


class SpoolFull(StorageError):
    """The spool has no room left for this record; retry once uploads have caught up."""


@dataclass(eq=False, slots=True)
class Segment:
    name: SegmentName
    path: Path
    size: int = 0
    records: int = 0
    opened_at: float = field(default_factory=time.monotonic)
    recovered: bool = False  # left by an earlier run: every line is checked before upload
    fd: int | None = None  # open for appending while the segment is active
    synced_size: int = 0
    dir_synced: bool = False
    key: str | None = None  # its object key, once the writer asked for it


class Spool:
    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.run_id = new_run_id()
        self.size = 0  # bytes in every segment file, active or sealed
        self._seq = 0
        self._active: dict[Partition, Segment] = {}
        self._lock_fd: int | None = None

    # -- ownership ---------------------------------------------------------

    def open(self) -> list[Segment]:
        """Lock the directory; the segments an earlier run left, oldest first (blocking)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StorageError(f"spool directory {self.directory} is in use by another "
                               "mlgate process; give each process its own data_dir",
                               retryable=False) from None
        self._lock_fd = fd
        leftovers = []
        for entry in os.scandir(self.directory):
            name = parse_segment_name(entry.name)
            if name is None or not entry.is_file():
                continue
            size = entry.stat().st_size
            leftovers.append(Segment(name, Path(entry.path), size=size, recovered=True,
                                     synced_size=size, dir_synced=True))
        leftovers.sort(key=lambda s: (s.name.partition.hour, s.name.number))
        self.size = sum(s.size for s in leftovers)
        return leftovers

    def close(self) -> None:
        """Close active files and release the directory (blocking)."""
        for seg in self._active.values():
            _close_fd(seg)
        self._active.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- writing -----------------------------------------------------------

    def append(self, partition: Partition, data: bytes) -> Segment:
        """Append complete lines to the partition's active segment, creating it if needed."""
        seg = self._active.get(partition)
        if seg is None:
            self._seq += 1
            name = SegmentName(partition, object_number(self.run_id, self._seq))
            path = self.directory / name.filename
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            seg = self._active[partition] = Segment(name, path, fd=fd)
        assert seg.fd is not None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(seg.fd, view):]
        except OSError as exc:
            # Never leave half a line behind: cut back to the last complete record.
            try:
                os.ftruncate(seg.fd, seg.size)
            except OSError:
                pass
            raise StorageError(f"cannot append to the spool: {exc}") from exc
        seg.size += len(data)
        seg.records += data.count(b"\n")
        self.size += len(data)
        return seg

    def current(self, partition: Partition) -> Segment | None:
        """The partition's active segment, if it has one."""
        return self._active.get(partition)

    def active(self) -> list[Segment]:
        return list(self._active.values())

    def detach(self, seg: Segment) -> None:
        """Stop appending to ``seg``; call :meth:`seal` next."""
        if self._active.get(seg.name.partition) is seg:
            del self._active[seg.name.partition]

    @staticmethod
    def sync(segments: list[Segment]) -> None:
        """Make the appended bytes (and new files' directory entries) durable (blocking)."""
        dirs: set[Path] = set()
        for seg in segments:
            size = seg.size
            if seg.fd is not None and seg.synced_size < size:
                os.fsync(seg.fd)
                seg.synced_size = size
            if not seg.dir_synced:
                dirs.add(seg.path.parent)
                seg.dir_synced = True
        for directory in dirs:
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    @staticmethod
    def seal(seg: Segment) -> None:
        """Sync and close a detached segment: from now on its bytes never change (blocking)."""
        Spool.sync([seg])
        _close_fd(seg)

    # -- uploading ---------------------------------------------------------

    @staticmethod
    def read(seg: Segment) -> CheckedSegment:
        """The lines of a sealed segment that are safe to upload (blocking)."""
        return check_lines(seg.path.read_bytes(), validate=seg.recovered)

    @staticmethod
    def unlink(seg: Segment) -> None:
        """Delete an uploaded segment (blocking); then call :meth:`forget`."""
        try:
            os.unlink(seg.path)
        except FileNotFoundError:
            pass

    def forget(self, seg: Segment) -> None:
        self.size -= seg.size


def _close_fd(seg: Segment) -> None:
    if seg.fd is not None:
        os.close(seg.fd)
        seg.fd = None
