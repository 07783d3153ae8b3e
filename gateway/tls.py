"""TLS termination at the edge: a certificate and key from files, reloaded when they change.

For an edge with no ingress in front. :class:`CertificateReloader` owns one
``ssl.SSLContext`` (TLS 1.2 or later, HTTP/1.1 by ALPN), given to the listening site
(``web.TCPSite(runner, ..., ssl_context=reloader.context)``); every ``interval``
seconds it looks at both files and, when either changed (cert-manager or certbot
renewed them), loads them again into the same context: new connections get the new
certificate, connections already open keep theirs. A pair that does not load (a
half-written renewal, a key that does not match) is logged and the old one kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("mlgate.gateway.tls")


class TlsConfigError(ValueError):
    """The certificate or key cannot be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert_file: str
    key_file: str
    reload_interval: float = 10.0

    def __post_init__(self) -> None:
        if self.reload_interval <= 0:
            raise ValueError("tls reload_interval must be > 0")


def _stamp(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_mtime_ns, st.st_size, st.st_ino


class CertificateReloader:
    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_alpn_protocols(["http/1.1"])
        self.loads = 0
        self._stamps: tuple[Any, ...] | None = None
        self._task: asyncio.Task[None] | None = None
        self.load()

    def load(self) -> None:
        """Load the pair into the context (``TlsConfigError`` when it does not)."""
        files = self.files
        try:
            stamps = (_stamp(files.cert_file), _stamp(files.key_file))
            # first in a scratch context: a pair that fails half-way (the new certificate,
            # then a key that does not match) must not be left in the live one
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                files.cert_file, files.key_file)
            self.context.load_cert_chain(files.cert_file, files.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise TlsConfigError(f"tls: cannot load certificate {files.cert_file} and key "
                                 f"{files.key_file}: {exc}") from exc
        self._stamps = stamps
        self.loads += 1

    def changed(self) -> bool:
        try:
            return (_stamp(self.files.cert_file), _stamp(self.files.key_file)) != self._stamps
        except OSError:
            return False  # mid-rename: look again next time

    def reload_if_changed(self) -> bool:
        """True when a new pair was loaded."""
        if not self.changed():
            return False
        try:
            self.load()
        except TlsConfigError as exc:
            log.error("%s; still serving the previous certificate", exc)
            return False
        log.info("tls: loaded the renewed certificate %s", Path(self.files.cert_file).name)
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.files.reload_interval)
            self.reload_if_changed()

    async def ctx(self, _app: Any) -> AsyncIterator[None]:
        """``cleanup_ctx``: watch the files while the app runs."""
        self._task = asyncio.create_task(self.watch(), name="mlgate-tls-reload")
        yield
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
