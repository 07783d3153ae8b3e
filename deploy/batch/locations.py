"""A job's input and output places: a folder of a bucket (or a local directory) whose objects
are named relative to it, through the storage backends (local, S3, GCS).

Where the buckets are comes from ``batch:`` (falling back to ``storage:`` when it names
the same kind of store), so a job can read ``s3://`` from the same MinIO or moto as the
records, or from AWS with the standard credential chain.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from deploy.config import Settings
from deploy.control.images import resolve_image
from deploy.control.job_plan import Location, backoff_delay
from storage import Backend, LocalBackend, ObjectNotFound, StorageError, make_backend

log = logging.getLogger("mlgate.batch")
T = TypeVar("T")


@dataclass(frozen=True)
class Endpoints:
    """Where ``s3://`` and ``gs://`` locations are served from, and the bucket call timeout."""

    s3: str | None = None
    s3_region: str | None = None
    gcs: str | None = None
    timeout: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Endpoints:
        b, s = settings.batch, settings.storage
        return cls(s3=b.s3_endpoint_url or (s.endpoint_url if s.kind == "s3" else None),
                   s3_region=b.s3_region or s.region,
                   gcs=b.gcs_endpoint_url or (s.endpoint_url if s.kind == "gcs" else None),
                   timeout=b.timeout)


class Place:
    """Objects under one folder: ``names`` relative to it, read and written by name.

    A retryable bucket failure is retried with backoff (``attempts`` in all); what still
    fails, or cannot succeed, leaves as the backend's ``StorageError`` (``ObjectNotFound``
    for a missing object, at once).
    """

    def __init__(self, backend: Backend, base: str, description: str, attempts: int = 6,
                 backoff: float = 0.5) -> None:
        self.backend = backend
        self.base = base
        self.description = description
        self.attempts = attempts
        self.backoff = backoff

    async def names(self, prefix: str = "") -> list[str]:
        keys = await self._retried(lambda: self.backend.list(self.base + prefix))
        return [key[len(self.base):] for key in keys]

    async def read(self, name: str) -> bytes:
        return await self._retried(lambda: self.backend.get(self.base + name))

    async def write(self, name: str, data: bytes) -> None:
        await self._retried(lambda: self.backend.put(self.base + name, data))

    async def delete(self, name: str) -> None:
        await self._retried(lambda: self.backend.delete(self.base + name))

    async def close(self) -> None:
        await self.backend.close()

    async def _retried(self, call: Callable[[], Awaitable[T]]) -> T:
        attempt = 1
        while True:
            try:
                return await call()
            except ObjectNotFound:
                raise
            except StorageError as exc:
                if not exc.retryable or attempt >= self.attempts:
                    raise
                log.warning("%s: %s; retrying", self.description, exc)
                await asyncio.sleep(backoff_delay(attempt, self.backoff))
                attempt += 1


def resolve_local(text: str, base_dir: Path) -> str:
    """A location as stored: buckets as written; a local path absolute (relative to
    ``base_dir``, e.g. the manifest's directory) and, naming a directory, ending with ``/``."""
    if "://" in text and not text.startswith("file://"):
        return text
    path = text.removeprefix("file://")
    slash = path.endswith("/")
    resolved = str((base_dir / path).resolve()) if path else str(base_dir.resolve())
    return local_folder_form(resolved + ("/" if slash and resolved != "/" else ""))


def resolve_job_paths(doc: dict, base_dir: Path) -> dict:
    """A job document with its local ``input``/``output`` and a local ``modelUri`` made
    absolute from ``base_dir`` (the manifest's directory, or mlgate's)."""
    spec = doc.get("spec")
    if isinstance(spec, dict):
        for name in ("input", "output"):
            if isinstance(spec.get(name), str) and spec[name]:
                spec[name] = resolve_local(spec[name], base_dir)
        if isinstance(spec.get("modelUri"), str) and spec["modelUri"]:
            spec["modelUri"] = resolve_image(spec["modelUri"], base_dir)
    return doc


def local_folder_form(text: str) -> str:
    """A local path that names an existing directory is that directory (``in`` is ``in/``)."""
    path = text.removeprefix("file://")
    if path.startswith("/") and not path.endswith("/") and Path(path).is_dir():
        return path + "/"
    return path


def open_place(location: Location, endpoints: Endpoints) -> Place:
    """The place of ``location``'s folder; nothing is contacted until it is used."""
    folder = location.folder
    if location.scheme == "file":
        return Place(LocalBackend(folder or "/"), "", folder)
    kind = "s3" if location.scheme == "s3" else "gcs"
    endpoint = endpoints.s3 if kind == "s3" else (endpoints.gcs
                                                  or os.environ.get("STORAGE_EMULATOR_HOST"))
    backend = make_backend(kind, bucket=location.bucket, endpoint_url=endpoint,
                           region=endpoints.s3_region, timeout=endpoints.timeout)
    return Place(backend, folder, f"{location.scheme}://{location.bucket}/{folder}")


