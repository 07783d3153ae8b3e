"""Objects in a Google Cloud Storage bucket through gcloud-aio-storage.

gcloud-aio-storage is asyncio-native on aiohttp, so uploads share mlgate's
event loop instead of a thread pool (google-cloud-storage is synchronous).
The API root is ``endpoint_url`` when set, else ``STORAGE_EMULATOR_HOST``
when set (both mean an emulator: no credentials sent), else Google's, with
Application Default Credentials.

Every failure leaves this module as a ``StorageError``: 404 on an object as
``ObjectNotFound``; 5xx, 408, 429, connection errors and timeouts as
retryable; other 4xx as not retryable. ``CancelledError`` passes through.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import aiohttp
from gcloud.aio.storage import Storage

from .base import ObjectNotFound, StorageError
from .errors import is_retryable_status


class GCSBackend:
    name = "gcs"

    def __init__(self, bucket: str, *, endpoint_url: str | None = None,
                 timeout: float = 30.0, max_connections: int = 16) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self.timeout = timeout
        self.max_connections = max_connections
        self._storage: Storage | None = None
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> Storage:
        if self._storage is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections),
                timeout=aiohttp.ClientTimeout(total=self.timeout))
            self._storage = Storage(session=self._session, api_root=self.endpoint_url)
        return self._storage

    async def put(self, key: str, data: bytes) -> None:
        with _mapped(key):
            await self._client().upload(self.bucket, key, data,
                                        content_type="application/x-ndjson",
                                        force_resumable_upload=False,
                                        timeout=int(self.timeout))

    async def get(self, key: str) -> bytes:
        with _mapped(key, missing_is_not_found=True):
            return await self._client().download(self.bucket, key, timeout=int(self.timeout))

    async def delete(self, key: str) -> None:
        try:
            with _mapped(key, missing_is_not_found=True):
                await self._client().delete(self.bucket, key, timeout=int(self.timeout))
        except ObjectNotFound:
            return

    async def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        params: dict[str, str] = {"prefix": prefix}
        with _mapped(prefix):
            while True:
                page: dict[str, Any] = await self._client().list_objects(
                    self.bucket, params=params, timeout=int(self.timeout))
                keys.extend(item["name"] for item in page.get("items", ()))
                token = page.get("nextPageToken")
                if not token:
                    break
                params = {"prefix": prefix, "pageToken": token}
        return sorted(keys)

    async def close(self) -> None:
        if self._session is not None:
            session, self._session, self._storage = self._session, None, None
            await session.close()


@contextlib.contextmanager
def _mapped(key: str, *, missing_is_not_found: bool = False) -> Iterator[None]:
    try:
        yield
    except aiohttp.ClientResponseError as exc:
        if exc.status == 404 and missing_is_not_found:
            raise ObjectNotFound(key) from exc
        raise StorageError(f"GCS {exc.status} on {key!r}: {exc.message}",
                           retryable=is_retryable_status(exc.status)) from exc
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise StorageError(f"GCS unreachable for {key!r}: {exc!r}") from exc
