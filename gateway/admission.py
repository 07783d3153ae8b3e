"""Admission control per deployment: bounded in-flight requests, a bounded wait, deadlines.

Envoy's circuit breakers (``max_requests``, ``max_pending_requests``) and route timeout,
for one deployment:

* at most ``max_in_flight_per_replica`` requests are sent to one replica at once (its
  share in each gateway process: ``ceil(limit / processes)`` with ``--workers N``);
* a request that finds every replica at its bound waits, first come first served, with at
  most ``max_waiting`` others — the requests held for a first replica (the cold start)
  count against the same bound. Past it the answer is 503 with ``Retry-After`` at once,
  not after a timeout (:class:`Shed`);
* every request has a deadline: the client's ``x-mlgate-timeout-ms`` header, capped at
  ``max_timeout``, else the deployment's ``timeout`` (none by default). A waiting request
  whose deadline passes is answered 504 and is never sent upstream (:class:`DeadlineExceeded`);
  one that is sent gets only the time left as its read timeout.

The decisions are pure functions (:func:`deadline_of`, :func:`slot_limit`, :func:`room`);
:class:`Gate` is the small shell that parks and wakes waiting requests.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import BadRequest, GatewayError, ServiceUnavailable

DEADLINE_HEADER = "x-mlgate-timeout-ms"
SHED_RETRY_AFTER = 1


@dataclass(frozen=True, slots=True)
class Admission:
    """One deployment's bounds (``admission:`` in ``mlgate.yaml``, ``mlgate.io/*`` annotations)."""

    max_in_flight_per_replica: int = 32
    """Requests sent to one replica at once; 0: no bound."""
    max_waiting: int = 100
    """Requests waiting for a replica (at its bound, or for a first one to start)."""
    timeout: float | None = None
    """Seconds a request may take when the client sets no deadline; None: no deadline (a
    cold start waits up to ``cold_start_timeout``, a call up to the read timeout)."""
    max_timeout: float = 300.0
    """The longest deadline a client may ask for with ``x-mlgate-timeout-ms``."""

    def __post_init__(self) -> None:
        if self.max_in_flight_per_replica < 0 or self.max_waiting < 0:
            raise ValueError("admission max_in_flight_per_replica and max_waiting must be >= 0")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("admission timeout must be > 0 (or null: no deadline)")
        if self.max_timeout <= 0:
            raise ValueError("admission max_timeout must be > 0")


DEFAULT_ADMISSION = Admission()


class Shed(ServiceUnavailable):
    """Refused at once: the gateway will not queue this request (503, ``Retry-After``).
    ``reason`` names why for the metrics (``queue_full``, ``overload_memory``, ...)."""

    kind = "overloaded"
    refusal = "shed"
    record = False

    def __init__(self, message: str, reason: str, *, retry_after: int = SHED_RETRY_AFTER) -> None:
        super().__init__(message, retry_after=retry_after)
        self.reason = reason


class DeadlineExceeded(GatewayError):
    """The request's deadline passed before it could be sent upstream (504)."""

    status = 504
    kind = "deadline_exceeded"
    refusal = "timed_out"
    record = False

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def deadline_of(headers: Mapping[str, str], admission: Admission, now: float) -> float | None:
    """The request's deadline on the monotonic clock, or None. A malformed header is a 400
    (a client that asked for a deadline must not silently get none)."""
    raw = headers.get(DEADLINE_HEADER)
    if raw is None:
        return None if admission.timeout is None else now + admission.timeout
    try:
        millis = int(raw.strip())
    except ValueError:
        raise BadRequest(f"{DEADLINE_HEADER} must be a whole number of milliseconds, "
                         f"got {raw[:40]!r}") from None
    if millis <= 0:
        raise BadRequest(f"{DEADLINE_HEADER} must be > 0")
    return now + min(millis / 1000, admission.max_timeout)


def slot_limit(admission: Admission, processes: int) -> int:
    """This process's bound on requests per replica (0: none): the gateway-wide bound split
    over the processes serving the port, rounded up so each may send at least one."""
    limit = admission.max_in_flight_per_replica
    return 0 if limit == 0 else max(1, math.ceil(limit / max(1, processes)))


def wait_limit(admission: Admission, processes: int) -> int:
    """This process's bound on waiting requests (0: none may wait)."""
    limit = admission.max_waiting
    return 0 if limit == 0 else max(1, math.ceil(limit / max(1, processes)))


def remaining(deadline: float | None, now: float | None = None) -> float | None:
    """Seconds left before ``deadline`` (None: no deadline)."""
    if deadline is None:
        return None
    return deadline - (time.monotonic() if now is None else now)


class Gate:
    """The requests of one deployment waiting for a replica slot, in arrival order.

    A request that finds a slot goes at once only when nobody is waiting (or woken and not
    yet running): later arrivals do not overtake. A freed slot wakes the first waiter
    (:meth:`release`); a change of replicas wakes them all (:meth:`wake_all`), so they look
    again (a cold start, or a deployment gone)."""

    __slots__ = ("_waiters", "held", "woken")

    def __init__(self) -> None:
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.woken = 0
        self.held = 0
        """Requests held for a first replica (the cold start)."""

    @property
    def waiting(self) -> int:
        """Requests waiting for a slot or a first replica."""
        return len(self._waiters) + self.woken + self.held

    @property
    def queued(self) -> bool:
        """Someone is ahead of a new arrival."""
        return bool(self._waiters) or self.woken > 0

    async def wait(self, deadline: float | None) -> bool:
        """Wait for a slot to be freed (or the replicas to change); False when ``deadline``
        passed first. The caller has checked that it may wait (``waiting`` below its bound)."""
        left = remaining(deadline)
        if left is not None and left <= 0:
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        passed_on = True  # a wake-up this request cannot use goes to the next waiter
        try:
            if left is None:
                await asyncio.shield(future)
            else:
                try:
                    async with asyncio.timeout(left):
                        await asyncio.shield(future)
                except TimeoutError:
                    passed_on = not future.done()
                    return future.done()
            passed_on = False
            return True
        finally:
            if future.done():
                self.woken -= 1
                if passed_on:
                    self.release()
            else:
                future.cancel()
                self._waiters.remove(future)

    def release(self) -> None:
        """A slot was freed: wake the first waiter."""
        while self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                self.woken += 1
                future.set_result(None)
                return

    def wake_all(self) -> None:
        while self._waiters:
            self.release()
