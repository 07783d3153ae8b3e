"""The records an export reads, as local JSON Lines files (the engines read files).

A local bucket is read in place; objects of S3 or GCS are fetched into a staging directory
first (concurrently), since neither engine here reaches the bucket by itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from storage import (
    FEEDBACK,
    REQUEST_RESPONSE,
    RESPONSE_BODY,
    Backend,
    LocalBackend,
    object_hour,
)

from .query import ExportQuery

FEEDBACK_SLACK = timedelta(hours=1)
"""Feedback may come before its prediction (a client-chosen Request-ID)."""
FETCH_CONCURRENCY = 16


@dataclass(frozen=True)
class Sources:
    predictions: list[Path]
    requests: list[Path]
    feedback: list[Path]


async def _keys(backend: Backend, prefix: str, kind: str, query: ExportQuery) -> list[str]:
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    version = f"{query.model_version}/" if query.model_version and kind != FEEDBACK else ""
    keys = await backend.list(f"{head}{kind}/{query.model_name}/{version}")
    out = []
    for key in keys:
        hour = object_hour(key)
        if hour is None:
            continue
        if kind == FEEDBACK:
            first = query.first_hour
            if first is None or hour >= first - FEEDBACK_SLACK:
                out.append(key)
        elif query.wants_hour(hour):
            out.append(key)
    return out


async def gather_sources(backend: Backend, prefix: str, query: ExportQuery,
                         staging: Path) -> Sources:
    """The files of each kind the export needs (fetched under ``staging`` unless local)."""
    kinds = (RESPONSE_BODY, REQUEST_RESPONSE, FEEDBACK)
    keys = {kind: await _keys(backend, prefix, kind, query) for kind in kinds}
    if isinstance(backend, LocalBackend):
        return Sources(*([backend.root / k for k in keys[kind]] for kind in kinds))
    limit = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def fetch(key: str) -> Path:
        path = staging / "records" / key
        async with limit:
            data = await backend.get(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(path.write_bytes, data)
        return path

    paths = {kind: await asyncio.gather(*(fetch(k) for k in keys[kind])) for kind in kinds}
    return Sources(*(list(paths[kind]) for kind in kinds))
