"""Where verification keys come from: a fixed set, or an issuer's JWKS URL.

The JWKS client keeps the last good key set. It refreshes

* when a token names a ``kid`` it does not know (key rotation) — the request waits
  for that one fetch, shared by every request that needs it;
* in the background once the set is older than ``ttl`` (old keys keep serving);

and never more often than ``min_refresh_interval``, so tokens with made-up kids
cannot turn the gateway into a load generator against the issuer. A failed fetch
keeps the previous keys.

Key rotation needs no restart: a new ``kid`` is fetched when the first token naming it
arrives. A key the issuer stops publishing is *retired*, not forgotten: it still
verifies tokens for ``retired_key_grace`` seconds (their own ``exp`` still applies), so
tokens signed before the rotation keep working until they expire. Set the grace to 0
to drop a key at once (a compromised key: revoke its tokens too).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import aiohttp
import orjson

from ..errors import ServiceUnavailable
from .keys import KeyConfigError, VerifyKey, candidates, keys_from_jwks

log = logging.getLogger("mlgate.auth")

Fetch = Callable[[], Awaitable[bytes]]


class KeySource(Protocol):
    @property
    def version(self) -> int:
        """Changes whenever the key set changes (verified-token caches are dropped then)."""
        ...

    async def keys_for(self, kid: str | None) -> Sequence[VerifyKey]: ...


class StaticKeys:
    """Keys known at start-up: a JWKS or PEM file, or an HS256 secret."""

    version = 0

    def __init__(self, keys: Sequence[VerifyKey]) -> None:
        self.keys = tuple(keys)

    async def keys_for(self, kid: str | None) -> Sequence[VerifyKey]:
        return candidates(self.keys, kid)


@dataclass(frozen=True, slots=True)
class JwksSettings:
    url: str
    ttl: float = 600.0
    min_refresh_interval: float = 30.0
    timeout: float = 5.0
    max_bytes: int = 1 << 20
    retired_key_grace: float = 86400.0
    """Seconds a key the JWKS no longer lists still verifies tokens (their ``exp`` applies)."""

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"jwks_url must be an http(s) URL, got {self.url!r}")
        if self.ttl <= 0 or self.min_refresh_interval < 0 or self.timeout <= 0:
            raise ValueError("jwks ttl and timeout must be > 0, min_refresh_interval >= 0")
        if self.retired_key_grace < 0:
            raise ValueError("jwks retired_key_grace must be >= 0")


class JwksFetchError(Exception):
    pass


class JwksClient:
    def __init__(self, settings: JwksSettings, *, fetch: Fetch | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.fetches = 0
        self._fetch = fetch
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._keys: tuple[VerifyKey, ...] = ()
        self._retired: dict[str, tuple[VerifyKey, float]] = {}
        """kid -> (key, when the JWKS stopped listing it)."""
        self._digest = b""
        self._version = 0
        self._fetched_at: float | None = None
        self._last_attempt: float | None = None
        self._inflight: asyncio.Future[bool] | None = None
        self._background: asyncio.Task[bool] | None = None

    @property
    def version(self) -> int:
        return self._version

    @property
    def keys(self) -> tuple[VerifyKey, ...]:
        return self._keys

    @property
    def retired(self) -> tuple[VerifyKey, ...]:
        """Keys no longer published that still verify tokens (within the grace)."""
        horizon = self._clock() - self.settings.retired_key_grace
        return tuple(key for key, since in self._retired.values() if since > horizon)

    async def start(self) -> None:
        """Open the HTTP session and try a first fetch (failure is logged, not fatal)."""
        if self._fetch is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
                headers={"Accept": "application/json"})
        await self.refresh()

    async def close(self) -> None:
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(BaseException):
                await self._background
        if self._session is not None:
            await self._session.close()

    async def keys_for(self, kid: str | None) -> Sequence[VerifyKey]:
        now = self._clock()
        if self._fetched_at is not None and now - self._fetched_at > self.settings.ttl:
            self._refresh_in_background()
        found = self._candidates(kid)
        if not found and (kid is not None or not self._keys):
            if await self.refresh():
                found = self._candidates(kid)
        if not self._keys:
            raise ServiceUnavailable("the token issuer's signing keys are not available yet "
                                     "(JWKS fetch failed); retry later", retry_after=5)
        return found

    def _candidates(self, kid: str | None) -> list[VerifyKey]:
        found = candidates(self._keys, kid)
        if self._retired and (kid is None or not found):
            found += candidates(self.retired, kid)
        return found

    def _refresh_in_background(self) -> None:
        if self._background is None or self._background.done():
            self._background = asyncio.ensure_future(self.refresh())

    async def refresh(self) -> bool:
        """Fetch now unless rate-limited; True when a fetch succeeded (shared by waiters)."""
        if self._inflight is not None:
            return await asyncio.shield(self._inflight)
        now = self._clock()
        if (self._last_attempt is not None
                and now - self._last_attempt < self.settings.min_refresh_interval):
            return False
        self._last_attempt = now
        self._inflight = asyncio.get_running_loop().create_future()
        ok = False
        try:
            ok = await self._fetch_and_install()
        finally:
            self._inflight.set_result(ok)
            self._inflight = None
        return ok

    async def _fetch_and_install(self) -> bool:
        self.fetches += 1
        try:
            body = await (self._fetch() if self._fetch is not None else self._http_fetch())
            doc = orjson.loads(body)
            keys = keys_from_jwks(doc, self.settings.url)
        except (JwksFetchError, orjson.JSONDecodeError, KeyConfigError) as exc:
            log.warning("JWKS %s: fetch failed, keeping %d known key(s): %s",
                        self.settings.url, len(self._keys), exc)
            return False
        except Exception:  # the issuer's answer must never fail a request with a 500
            log.exception("JWKS %s: unexpected failure, keeping %d known key(s)",
                          self.settings.url, len(self._keys))
            return False
        if not keys:
            log.warning("JWKS %s: no usable key in the document, keeping %d known key(s)",
                        self.settings.url, len(self._keys))
            return False
        self._fetched_at = self._clock()
        digest = hashlib.sha256(body).digest()
        if digest != self._digest:
            self._retire(self._keys, keys)
            self._digest, self._keys = digest, keys
            self._version += 1
            log.info("JWKS %s: %d key(s): %s", self.settings.url, len(keys),
                     ", ".join(str(k.kid) for k in keys))
        return True

    def _retire(self, old: tuple[VerifyKey, ...], new: tuple[VerifyKey, ...]) -> None:
        """Keys (with a kid) that ``new`` no longer lists start their grace; a kid listed
        again is no longer retired; grace periods over are forgotten."""
        now = self._clock()
        listed = {k.kid for k in new}
        for key in old:
            if key.kid is not None and key.kid not in listed and key.kid not in self._retired:
                self._retired[key.kid] = (key, now)
                if self.settings.retired_key_grace > 0:
                    log.info("JWKS %s: key %s is no longer published; it verifies tokens for "
                             "%gs more", self.settings.url, key.kid,
                             self.settings.retired_key_grace)
        horizon = now - self.settings.retired_key_grace
        for kid in [k for k, (_, since) in self._retired.items()
                    if k in listed or since <= horizon]:
            del self._retired[kid]

    async def _http_fetch(self) -> bytes:
        assert self._session is not None, "JwksClient.start() was not called"
        url = self.settings.url
        try:
            async with self._session.get(url, allow_redirects=False) as resp:
                if resp.status != 200:
                    raise JwksFetchError(f"HTTP {resp.status}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > self.settings.max_bytes:
                        raise JwksFetchError(
                            f"document larger than {self.settings.max_bytes} bytes")
                    chunks.append(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise JwksFetchError(f"{type(exc).__name__}: {exc}") from None
        return b"".join(chunks)
