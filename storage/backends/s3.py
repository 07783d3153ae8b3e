"""Objects in an S3 bucket through aiobotocore (AWS, MinIO, moto, Ceph, ...).

Credentials come from botocore's standard chain (environment, shared
files, instance or task roles). The client is created inside the running
loop on first use and reused: one connection pool per backend.

Every failure leaves this module as a ``StorageError``: ``NoSuchKey`` as
``ObjectNotFound``; 5xx, 408, 429, throttling, connection errors and
timeouts as retryable; other 4xx (no such bucket, access denied) and
missing credentials as not retryable. ``CancelledError`` passes through.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)

from .base import ObjectNotFound, StorageError
from .errors import is_retryable_status


class S3Backend:
    name = "s3"

    def __init__(self, bucket: str, *, endpoint_url: str | None = None,
                 region: str | None = None, connect_timeout: float = 5.0,
                 read_timeout: float = 30.0, max_connections: int = 16) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region
        self.timeout = connect_timeout + read_timeout
        self._config = AioConfig(
            connect_timeout=connect_timeout, read_timeout=read_timeout,
            max_pool_connections=max_connections,
            # The spool's uploader retries with its own backoff; one attempt per call here.
            retries={"total_max_attempts": 1, "mode": "standard"})
        self._client: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock: asyncio.Lock | None = None

    async def _get_client(self) -> Any:
        if self._client is not None:
            return self._client
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is None:
                stack = contextlib.AsyncExitStack()
                self._client = await stack.enter_async_context(get_session().create_client(
                    "s3", region_name=self.region, endpoint_url=self.endpoint_url,
                    config=self._config))
                self._stack = stack
        return self._client

    async def put(self, key: str, data: bytes) -> None:
        with _mapped(key):
            async with asyncio.timeout(self.timeout):  # a PUT to a hung server has no read timeout
                client = await self._get_client()
                await client.put_object(Bucket=self.bucket, Key=key, Body=data,
                                        ContentType="application/x-ndjson")

    async def get(self, key: str) -> bytes:
        with _mapped(key):
            async with asyncio.timeout(self.timeout):
                client = await self._get_client()
                resp = await client.get_object(Bucket=self.bucket, Key=key)
                async with resp["Body"] as body:
                    return await body.read()

    async def delete(self, key: str) -> None:
        with _mapped(key):
            async with asyncio.timeout(self.timeout):
                client = await self._get_client()
                await client.delete_object(Bucket=self.bucket, Key=key)

    async def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        with _mapped(prefix):
            client = await self._get_client()
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                     Prefix=prefix)
            async for page in pages:
                keys.extend(item["Key"] for item in page.get("Contents", ()))
        return sorted(keys)

    async def close(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            await stack.aclose()


@contextlib.contextmanager
def _mapped(key: str) -> Iterator[None]:
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchKey", "404") or (status == 404 and code != "NoSuchBucket"):
            raise ObjectNotFound(key) from exc
        raise StorageError(f"S3 {code or status} on {key!r}: {error.get('Message', exc)}",
                           retryable=is_retryable_status(status, code)) from exc
    except (NoCredentialsError, PartialCredentialsError, ParamValidationError) as exc:
        raise StorageError(f"S3 request for {key!r} cannot be made: {exc}",
                           retryable=False) from exc
    except (BotoCoreError, aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise StorageError(f"S3 unreachable for {key!r}: {exc!r}") from exc
