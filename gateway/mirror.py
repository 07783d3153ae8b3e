"""Shadow traffic: a copy of a routed request goes to the route's mirror deployment.

Fire-and-forget: the copy is started once the primary answer is in hand and
never awaited by the caller, so the mirror's latency and failures cannot reach
it. The mirror's answer is logged like any exchange, under the mirror's own
model name and version and the same Request-ID, with ``"mirror": true`` and the
route and target in the ``request_response`` record, so shadow and primary can
be compared offline. A copy that gets no answer (connect failure, timeout, no
replica) is logged with the gateway's error status and JSON body.

Copies in flight are bounded (``max_in_flight``): beyond it a copy is dropped and
counted, so a slow or hung mirror holds at most that many bodies in memory. Copies are
the cheapest work to give up under load: one that would have to wait for a replica of the
mirror (every one at its admission bound, or none ready) is not sent, and while the
gateway process is under pressure (:mod:`gateway.overload`) no copy is made; both are
counted as ``shed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import orjson
from multidict import CIMultiDict

from .admission import Shed
from .errors import GatewayError, default_error_body
from .headers import response_headers
from .outlier import OutlierPolicy
from .proxy import DEFAULT_OUTLIER, NO_PROTECTION, Protection, RecordSink, forward, make_exchange
from .routing import RouteTable
from .upstream import UpstreamPool

log = logging.getLogger("mlgate.gateway.mirror")
DROP_WARNING_INTERVAL = 10.0


@dataclass(slots=True)
class MirrorStats:
    copied: int = 0
    """Copies started."""
    dropped: int = 0
    """Copies not started because ``max_in_flight`` were already in flight."""
    answered: int = 0
    """Copies the mirror answered (any status)."""
    failed: int = 0
    """Copies that got no answer from the mirror."""
    shed: int = 0
    """Copies not sent: the mirror had no replica free, or the gateway was under pressure."""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class MirrorCopy:
    """What a copy needs from the primary request (nothing that refers to the live request)."""

    route_id: str
    deployment_id: str
    request_id: str
    method: str
    uri: str
    upstream_path: str
    host: str
    scheme: str
    request_headers: Iterable[tuple[str, str]]
    """The caller's headers, for the record (redacted by the writer)."""
    upstream_headers: dict[str, str]
    body: bytes


class Mirror:
    def __init__(self, table: RouteTable, pool: UpstreamPool, sink: RecordSink,
                 max_in_flight: int = 100, outlier: OutlierPolicy = DEFAULT_OUTLIER,
                 protection: Protection = NO_PROTECTION,
                 pressed: Callable[[], bool] | None = None) -> None:
        """``pressed()``: the gateway process is under pressure, make no copy."""
        if max_in_flight < 0:
            raise ValueError("mirror max_in_flight must be >= 0")
        self.protection = protection
        self.pressed = pressed
        self.table = table
        self.pool = pool
        self.sink = sink
        self.max_in_flight = max_in_flight
        self.outlier = outlier
        self.stats = MirrorStats()
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_drop_warning = -DROP_WARNING_INTERVAL

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def copy(self, request: MirrorCopy) -> bool:
        """Start the copy in the background; False (and counted) when it is dropped."""
        if self.pressed is not None and self.pressed():
            self.stats.shed += 1
            return False
        if len(self._tasks) >= self.max_in_flight:
            self.stats.dropped += 1
            now = time.monotonic()
            if now - self._last_drop_warning >= DROP_WARNING_INTERVAL:
                self._last_drop_warning = now
                log.warning("mirror copies dropped: %d in flight is the limit (%d dropped "
                            "so far)", self.max_in_flight, self.stats.dropped)
            return False
        task = asyncio.get_running_loop().create_task(self._send(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self.stats.copied += 1
        return True

    async def _send(self, req: MirrorCopy) -> None:
        dep = self.table.get(req.deployment_id)
        if dep is None:
            self.stats.failed += 1
            log.debug("mirror %s of route %s is not deployed", req.deployment_id, req.route_id)
            return
        try:
            up, upstream_ms = await forward(self.pool, dep, req.method, req.upstream_path,
                                            req.upstream_headers, req.body, self.outlier,
                                            protection=self.protection, shadow=True)
        except Shed:
            self.stats.shed += 1
            return
        except GatewayError as exc:
            self.stats.failed += 1
            status, body = exc.status, orjson.dumps(default_error_body(exc.status, exc.message,
                                                                       exc.kind))
            headers: CIMultiDict[str] = CIMultiDict({"content-type": "application/json",
                                                     "request-id": req.request_id})
        except Exception:  # never let a copy's bug surface anywhere
            self.stats.failed += 1
            log.exception("mirror copy to %s failed", req.deployment_id)
            return
        else:
            self.stats.answered += 1
            status, body = up.status, up.body
            headers = response_headers(up.headers, req.request_id, dep.model_name,
                                       dep.model_version, upstream_ms)
        self.sink(make_exchange(
            req.request_id, dep, req.method, req.uri, req.upstream_path, req.host, req.scheme,
            req.request_headers, req.body, status, headers.items(), body,
            {"route": req.route_id, "target": dep.id, "mirror": True}, req.route_id))

    async def close(self, timeout: float = 5.0) -> None:
        """Let copies in flight finish for up to ``timeout`` seconds, then cancel the rest."""
        if not self._tasks:
            return
        tasks = list(self._tasks)
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
