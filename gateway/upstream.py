"""The upstream transport: one pooled aiohttp client, errors mapped at the boundary.

aiohttp's exceptions never leave this module; callers see the ``UpstreamError``
family from ``gateway.errors``. ``UpstreamConnectError`` is the only one
raised before the request could have reached the model, so it is the only
one a caller may retry on another replica.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from .errors import UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout
from .routing import Replica


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds per phase; ``total`` None means bounded only by the phases."""

    connect: float = 2.0
    read: float = 60.0
    total: float | None = None

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"timeout {name} must be > 0, got {value}")

    def client_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.total, sock_connect=self.connect,
                                     sock_read=self.read)


@dataclass(slots=True)
class UpstreamResponse:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes


class UpstreamPool:
    """One ``ClientSession`` for all replicas; create it inside the running loop (``start``)."""

    def __init__(self, timeouts: Timeouts | None = None, *, limit: int = 1000,
                 keepalive: float = 15.0) -> None:
        self.timeouts = timeouts or Timeouts()
        self._limit = limit
        self._keepalive = keepalive
        self._session: aiohttp.ClientSession | None = None
        self._client_timeout = self.timeouts.client_timeout()

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._limit, limit_per_host=0,
                                         keepalive_timeout=self._keepalive,
                                         ttl_dns_cache=None)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=self._client_timeout, auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, replica: Replica, method: str, path_qs: str,
                   headers: dict[str, str], body: bytes) -> UpstreamResponse:
        assert self._session is not None, "UpstreamPool.start() was not awaited"
        url = URL(f"http://{replica.host}:{replica.port}{path_qs}", encoded=True)
        try:
            async with self._session.request(method, url, headers=headers,
                                             data=body or None, allow_redirects=False) as resp:
                payload = await resp.read()
                return UpstreamResponse(resp.status, resp.headers, payload)
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamConnectError(
                f"cannot connect to replica {replica.address}: {exc.os_error.strerror or exc}"
            ) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            raise UpstreamConnectError(
                f"connecting to replica {replica.address} timed out") from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise UpstreamTimeout(
                f"replica {replica.address} did not answer within {self.timeouts.read:g}s"
            ) from exc
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError,
                aiohttp.ClientResponseError, aiohttp.ClientOSError) as exc:
            raise UpstreamProtocolError(
                f"replica {replica.address} closed the connection or sent a broken answer: "
                f"{exc.__class__.__name__}"
            ) from exc
