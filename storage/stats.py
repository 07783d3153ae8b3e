"""The writer's counters: plain attributes, read by whoever exports metrics."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field


def _per_kind() -> dict[str, int]:
    return defaultdict(int)


@dataclass(slots=True)
class WriterStats:
    """Counts since start; ``*_per kind`` dicts are keyed by record kind."""

    spooled: dict[str, int] = field(default_factory=_per_kind)  # appended to the spool
    written: dict[str, int] = field(default_factory=_per_kind)  # stored in the bucket
    dropped: dict[str, int] = field(default_factory=_per_kind)  # request logs given up
    refused: dict[str, int] = field(default_factory=_per_kind)  # feedback answered 503
    objects: int = 0  # objects uploaded (re-uploads of a leftover segment included)
    upload_failures: int = 0  # failed put attempts (each one is retried)
    spool_syncs: int = 0  # fsync rounds for feedback (group commit: one serves many records)
    torn_lines: int = 0  # lines skipped: cut short by a crash, or not a JSON object
    spool_bytes: int = 0  # bytes in the spool now
    spool_segments: int = 0  # segment files in the spool now, active or waiting
    drop_reasons: dict[str, int] = field(default_factory=_per_kind)
    # request logs given up, by why: queue_full, spool_full, shutting_down, invalid, spool_error
    queue_length: int = 0  # exchanges waiting in memory to be spooled now
    queue_capacity: int = 0  # the bound of that queue (max_pending_records)

    def as_dict(self) -> dict[str, object]:
        return {name: dict(v) if isinstance(v, dict) else v
                for name in self.__slots__ for v in (getattr(self, name),)}
