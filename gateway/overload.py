"""Overload of the gateway process itself: watch memory and event-loop lag, shed, recover.

Every ``interval`` seconds a sample: the process's resident memory and how late the
loop woke the sampler (the event-loop lag: how long every ready callback waited; the
least of the last ``LAG_SAMPLES``, so one pause — a collection, a descheduled process —
is not an overload, while a saturated loop, late at every sample, is). The
pressure is the larger of ``rss / max_memory_mb`` and ``lag / max_loop_lag_ms``
(a mark of 0 is not watched). Envoy's overload manager in two actions, cheapest first:

=========  ===================  ==========================================================
level      entered at pressure  what is shed
=========  ===================  ==========================================================
0          —                    nothing
1          ``0.8``              mirror copies (:mod:`gateway.mirror`)
2          ``1.0``              new data-plane requests (``/model/``, ``/custom/``, feedback):
                                503 with ``Retry-After`` at once; the management API,
                                metrics and ``/health`` still answer
=========  ===================  ==========================================================

A level is left once the pressure has stayed below ``0.9`` of its entry point for
``recover_after`` seconds, so the process recovers on its own without flapping. The
decision (:func:`next_level`) is pure; :class:`OverloadMonitor` is the sampling shell and
:func:`make_overload_filter` the filter that sheds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import psutil

from .admission import Shed
from .filters import hooks_filter

log = logging.getLogger("mlgate.gateway.overload")

ENTER = (0.8, 1.0)
"""Pressure at which levels 1 and 2 are entered."""
LEAVE_FACTOR = 0.9
DATA_PLANE_PREFIXES = ("/model/", "/custom/", "/feedback/", "/api/v1/feedback")
RETRY_AFTER = 2
LAG_SAMPLES = 3


@dataclass(frozen=True, slots=True)
class OverloadConfig:
    max_memory_mb: float = 0.0
    """Resident memory mark of one gateway process; 0: not watched."""
    max_loop_lag_ms: float = 0.0
    """Event-loop lag mark; 0: not watched."""
    interval: float = 0.1
    """Seconds between samples."""
    recover_after: float = 1.0
    """Seconds the pressure must stay low before a level is left."""

    def __post_init__(self) -> None:
        if self.max_memory_mb < 0 or self.max_loop_lag_ms < 0:
            raise ValueError("overload marks must be >= 0 (0: not watched)")
        if self.interval <= 0 or self.recover_after < 0:
            raise ValueError("overload interval must be > 0 and recover_after >= 0")

    @property
    def enabled(self) -> bool:
        return self.max_memory_mb > 0 or self.max_loop_lag_ms > 0


@dataclass(frozen=True, slots=True)
class Sample:
    rss_mb: float
    lag_ms: float


def pressure(sample: Sample, config: OverloadConfig) -> tuple[float, str]:
    """The pressure and what causes it (``memory`` or ``loop_lag``)."""
    memory = sample.rss_mb / config.max_memory_mb if config.max_memory_mb else 0.0
    lag = sample.lag_ms / config.max_loop_lag_ms if config.max_loop_lag_ms else 0.0
    return (memory, "memory") if memory >= lag else (lag, "loop_lag")


def next_level(level: int, value: float, low_since: float | None,
               now: float, recover_after: float) -> tuple[int, float | None]:
    """The level after a sample of pressure ``value``, and since when it has been low
    enough to leave the current level (None: not low)."""
    target = sum(1 for mark in ENTER if value >= mark)
    if target >= level:
        return target, None
    if value >= ENTER[level - 1] * LEAVE_FACTOR:
        return level, None
    since = now if low_since is None else low_since
    if now - since >= recover_after:
        return max(target, level - 1), None
    return level, since


class OverloadMonitor:
    """Samples the process and keeps the level; ``ctx`` runs it for the app's lifetime."""

    def __init__(self, config: OverloadConfig,
                 rss_mb: Callable[[], float] | None = None) -> None:
        self.config = config
        self.level = 0
        self.cause = ""
        self.last = Sample(0.0, 0.0)
        self._rss_mb = rss_mb or _process_rss_mb()
        self._low_since: float | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def shed_mirror(self) -> bool:
        return self.level >= 1

    @property
    def shed_requests(self) -> bool:
        return self.level >= 2

    def observe(self, sample: Sample, now: float) -> None:
        """One sample: move between levels and say so in the log."""
        self.last = sample
        value, cause = pressure(sample, self.config)
        level, self._low_since = next_level(self.level, value, self._low_since, now,
                                            self.config.recover_after)
        if level != self.level:
            what = {0: "recovered: nothing is shed", 1: "shedding mirror copies",
                    2: "shedding new requests (503) and mirror copies"}[level]
            (log.warning if level > self.level else log.info)(
                "gateway overload level %d -> %d (%s: resident memory %.0f MB of %g, "
                "event-loop lag %.0f ms of %g): %s", self.level, level, cause, sample.rss_mb,
                self.config.max_memory_mb, sample.lag_ms, self.config.max_loop_lag_ms, what)
            self.level = level
        if level:
            self.cause = cause

    async def run(self) -> None:
        interval = self.config.interval
        loop = asyncio.get_running_loop()
        lags: deque[float] = deque(maxlen=LAG_SAMPLES)
        while True:
            expected = loop.time() + interval
            await asyncio.sleep(interval)
            now = loop.time()
            lags.append(max(0.0, now - expected) * 1000)
            try:
                self.observe(Sample(self._rss_mb(), min(lags)), now)
            except Exception:  # the watch must never stop over a sampling error
                log.exception("sampling the gateway process failed")

    async def ctx(self, _app: Any) -> AsyncIterator[None]:
        """``cleanup_ctx``: sample while the app runs (nothing when no mark is set)."""
        if self.config.enabled:
            self._task = asyncio.create_task(self.run(), name="mlgate-overload")
        yield
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _process_rss_mb() -> Callable[[], float]:
    process = psutil.Process()

    def rss_mb() -> float:
        return process.memory_info().rss / 2**20

    return rss_mb


def make_overload_filter(monitor: OverloadMonitor) -> Callable:
    """At level 2, the data plane answers 503 at once; everything else goes on."""

    def shed(request: Any) -> None:
        if monitor.level >= 2 and request.path.startswith(DATA_PLANE_PREFIXES):
            cause = monitor.cause or "memory"
            raise Shed(f"the gateway is overloaded ({cause.replace('_', ' ')}); retry later",
                       f"overload_{cause}", retry_after=RETRY_AFTER)

    return hooks_filter(shed, name="overload")
