"""Reading records back from any backend: by kind, model, version and time range.

Listing narrows by key prefix (kind, then model, then version) and by the
hour in each object's name; records are then filtered by their own ``time``.
Time bounds are UTC; ``since`` is inclusive, ``until`` exclusive.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from .backends.base import Backend
from .keys import check_segment
from .records import KINDS

OBJECT_NAME = re.compile(r"(\d{10})_[^/]*\.json$")
RECORD_TIME = "%Y-%m-%d %H:%M:%S %z"


@dataclass(frozen=True, slots=True)
class RecordQuery:
    kind: str
    model_name: str | None = None
    model_version: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.model_name is not None:
            check_segment("model name", self.model_name)
        if self.model_version is not None:
            if self.model_name is None:
                raise ValueError("a model version needs a model name")
            check_segment("model version", self.model_version)
        for bound in (self.since, self.until):
            if bound is not None and bound.tzinfo is None:
                raise ValueError("time bounds must carry a time zone")

    def key_prefix(self, prefix: str) -> str:
        parts = [p for p in (prefix.strip("/"), self.kind, self.model_name, self.model_version)
                 if p]
        return "/".join(parts) + "/"

    def wants_hour(self, hour: datetime) -> bool:
        """Whether records of the hour starting at ``hour`` can fall in the range."""
        if self.since is not None and hour + timedelta(hours=1) <= self.since:
            return False
        return self.until is None or hour < self.until

    def wants_time(self, when: datetime) -> bool:
        if self.since is not None and when < self.since:
            return False
        return self.until is None or when < self.until


def parse_bound(text: str) -> datetime:
    """``2026-11-01``, ``2026-11-01T09``, ``2026-11-01T09:30`` or any ISO time; UTC if naive."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        try:
            when = datetime.strptime(text, "%Y-%m-%dT%H")
        except ValueError:
            raise ValueError(f"not a date or time: {text!r} (use e.g. 2026-11-01 or "
                             "2026-11-01T09:30)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def object_hour(key: str) -> datetime | None:
    m = OBJECT_NAME.search(key)
    if m is None:
        return None
    try:
        return datetime.strptime(m.group(1), "%Y%m%d%H").replace(tzinfo=UTC)
    except ValueError:
        return None


async def list_objects(backend: Backend, prefix: str, query: RecordQuery) -> list[str]:
    """Keys of the objects that may hold records the query asks for, in key order."""
    keys = await backend.list(query.key_prefix(prefix))
    return [k for k in keys if (hour := object_hour(k)) is not None and query.wants_hour(hour)]


async def iter_records(backend: Backend, prefix: str,
                       query: RecordQuery) -> AsyncIterator[dict[str, Any]]:
    """Every record matching the query, object by object."""
    for key in await list_objects(backend, prefix, query):
        for line in (await backend.get(key)).splitlines():
            if not line.strip():
                continue
            record = orjson.loads(line)
            if query.since is None and query.until is None:
                yield record
                continue
            try:
                when = datetime.strptime(record["time"], RECORD_TIME)
            except (KeyError, TypeError, ValueError):
                continue
            if query.wants_time(when):
                yield record
