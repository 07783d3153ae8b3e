"""Objects as files under a root directory (the embedded default)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from .base import ObjectNotFound, StorageError


class LocalBackend:
    name = "local"

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.root = Path(root).resolve()
        self.fsync = fsync

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise StorageError(f"key {key!r} escapes the storage root", retryable=False)
        return path

    def _put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)

    def _get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    def _list(self, prefix: str) -> list[str]:
        # The prefix may end inside a name ("a/b/2019"), so walk from its directory part.
        base = self.root / prefix.rpartition("/")[0]
        if not base.is_dir():
            return []
        keys = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith("."):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def _delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def put(self, key: str, data: bytes) -> None:
        try:
            await asyncio.to_thread(self._put, key, data)
        except OSError as exc:
            raise StorageError(f"cannot write {key!r}: {exc}") from exc

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._get, key)

    async def list(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._list, prefix)

    async def delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(self._delete, key)
        except OSError as exc:
            raise StorageError(f"cannot delete {key!r}: {exc}") from exc

    async def close(self) -> None:
        return None
