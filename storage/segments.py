"""Spool segments: their file names, their object keys, and how their bytes are checked.

A segment holds JSON Lines records of one partition (kind, model, version,
UTC hour) and becomes exactly one object. Its file name carries everything
the object key needs, so a segment left over from a crashed run is uploaded
under the same key it would have had: re-uploading overwrites, never
duplicates.

``n`` in ``YYYYMMDDHH_<n>.json`` is a run id (12 random digits drawn at each
start) followed by a per-run sequence number, so writers on other processes
or hosts never pick the same key for the same partition.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from .keys import check_segment, object_key
from .records import KINDS

SUFFIX = ".seg"
SEPARATOR = "~"  # not in the safe segment set, so names split unambiguously
RUN_ID_DIGITS = 12
SEQ_DIGITS = 6


def new_run_id() -> str:
    return f"{secrets.randbelow(10**RUN_ID_DIGITS):0{RUN_ID_DIGITS}d}"


def object_number(run_id: str, seq: int) -> str:
    return f"{run_id}{seq:0{SEQ_DIGITS}d}"


_last_hour: tuple[int, str] = (-1, "")


def hour_of(when: datetime) -> str:
    """``YYYYMMDDHH`` in UTC (naive datetimes are taken as UTC); memoised per hour."""
    global _last_hour
    if when.tzinfo is UTC:
        hour = int(when.timestamp()) // 3600
        cached = _last_hour
        if cached[0] == hour:
            return cached[1]
        text = f"{when:%Y%m%d%H}"
        _last_hour = (hour, text)
        return text
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return f"{when:%Y%m%d%H}"


@dataclass(frozen=True, slots=True)
class Partition:
    kind: str
    model_name: str
    model_version: str
    hour: str  # YYYYMMDDHH, UTC

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown record kind {self.kind!r}")
        check_segment("model name", self.model_name)
        check_segment("model version", self.model_version)
        if len(self.hour) != 10 or not self.hour.isdigit():
            raise ValueError(f"hour must be YYYYMMDDHH, got {self.hour!r}")

    @property
    def when(self) -> datetime:
        return datetime.strptime(self.hour, "%Y%m%d%H").replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SegmentName:
    partition: Partition
    number: str  # the object's <n>: run id + sequence, digits only

    @property
    def filename(self) -> str:
        p = self.partition
        return SEPARATOR.join((p.hour, p.kind, p.model_name, p.model_version,
                               self.number)) + SUFFIX

    def object_key(self, prefix: str) -> str:
        p = self.partition
        return object_key(prefix, p.kind, p.model_name, p.model_version, p.when, self.number)


def parse_segment_name(filename: str) -> SegmentName | None:
    """The segment a spool file name describes, or ``None`` for any other file."""
    if not filename.endswith(SUFFIX):
        return None
    parts = filename.removesuffix(SUFFIX).split(SEPARATOR)
    if len(parts) != 5 or not parts[4].isdigit():
        return None
    hour, kind, model_name, model_version, number = parts
    try:
        return SegmentName(Partition(kind, model_name, model_version, hour), number)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class CheckedSegment:
    data: bytes  # the complete, valid lines, each ending with a newline
    records: int
    torn: int  # lines skipped: an unterminated last line, or a line that is not a JSON object


def check_lines(data: bytes, *, validate: bool) -> CheckedSegment:
    """Keep the lines that are safe to upload.

    A write cut short by a crash or power loss leaves a last line without its
    newline, and unsynced pages can come back as zeros; such lines are
    dropped and counted. ``validate=False`` only cuts an unterminated tail
    (for segments this process wrote in full itself).
    """
    torn = 0
    end = data.rfind(b"\n") + 1
    if end < len(data):
        if data[end:].strip():
            torn += 1
        data = data[:end]
    if not validate:
        return CheckedSegment(data, data.count(b"\n"), torn)
    kept: list[bytes] = []
    for line in data.splitlines(keepends=True):
        try:
            ok = isinstance(orjson.loads(line), dict)
        except orjson.JSONDecodeError:
            ok = False
        if ok:
            kept.append(line)
        elif line.strip():
            torn += 1
    return CheckedSegment(b"".join(kept), len(kept), torn)
