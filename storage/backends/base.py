"""The one small interface every object store implements.

Keys are ``/``-separated strings relative to the backend's root (a bucket, or
a directory). A backend never interprets them beyond that.
"""

from __future__ import annotations

from typing import Protocol


class StorageError(Exception):
    """A backend operation failed; ``retryable`` tells the caller whether trying again may help."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class ObjectNotFound(StorageError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no object at {key!r}", retryable=False)
        self.key = key


class Backend(Protocol):
    name: str

    async def put(self, key: str, data: bytes) -> None:
        """Write (or overwrite) the object at ``key`` atomically."""

    async def get(self, key: str) -> bytes:
        """Read the object at ``key``; ``ObjectNotFound`` when it does not exist."""

    async def list(self, prefix: str) -> list[str]:
        """Every key starting with ``prefix``, sorted."""

    async def delete(self, key: str) -> None:
        """Remove the object at ``key``; nothing happens when there is none."""

    async def close(self) -> None:
        """Release connections."""
