"""The SDK without I/O: an operation is a generator that yields steps and gets their results.

Every public call of :class:`mlgate.Client` and :class:`mlgate.AsyncClient` is one operation,
written once here and in ``_ops.py``; a driver (``_drive.py``) runs it with httpx's sync or
async client. The steps:

- :class:`Call` — send an HTTP request; the operation receives the ``httpx.Response``. An error
  answer is raised into the operation as an :class:`~mlgate.errors.ApiError` (so it may catch
  ``NotFound``), unless its status is listed in ``ok``.
- :class:`Sleep` — wait (polling); the operation receives ``None``.
- :class:`Progress` — tell the person waiting what is happening; ``None`` back.

Retries of ``503``/``429`` with ``Retry-After`` and of failed connections are the driver's,
decided by :func:`retry_delay` (pure).
"""

from __future__ import annotations

import random
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

T = TypeVar("T")
NO_JSON: Any = object()


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    url: str
    """A path below the client's base URL, or an absolute URL (a route's edge URL)."""
    params: Mapping[str, Any] | None = None
    json: Any = NO_JSON
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    ok: tuple[int, ...] = ()
    """Error statuses handed to the operation as a response instead of raised."""


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


@dataclass(frozen=True, slots=True)
class Progress:
    text: str
    done: bool = False
    """The last report of this wait (the indicator is closed after showing it)."""
    completed: int | None = None
    total: int | None = None
    """Counted progress (rows of a job): a bar where one can be drawn."""
    state: str = ""
    throttle: float = 0.0
    """Plain-line displays print a changed text at most every ``throttle`` seconds unless
    ``state`` changed (a job's counts move every poll; a deployment's lines are few)."""
    detail: Any = None
    """What was polled, as the API answered it (a rollout's document), for displays that
    show more than a line."""


Step = Call | Sleep | Progress
Op = Generator[Step, Any, T]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``retries`` more attempts after the first, waiting ``Retry-After`` when the server
    gives one (at most ``max_delay`` seconds), else exponential backoff with jitter."""

    retries: int = 3
    base: float = 0.5
    max_delay: float = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.base <= 0 or self.max_delay < self.base:
            raise ValueError("need retries >= 0, base > 0 and max_delay >= base")


RETRY_STATUSES = frozenset({429, 503})


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date; ``None`` if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retry_delay(policy: RetryPolicy, attempt: int, status: int | None,
                retry_after: str | None, rand: float | None = None) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or ``None`` to stop retrying.

    ``status`` is ``None`` for a connection that failed before the request was sent. Only
    ``429`` and ``503`` answers are retried, and only when they carry ``Retry-After`` (the
    server's word that the request was not acted on, so even a POST may be sent again).
    """
    if attempt >= policy.retries:
        return None
    if status is None:
        backoff = policy.base * 2 ** attempt
        jitter = random.random() if rand is None else rand
        return min(policy.max_delay, backoff * (0.5 + jitter / 2))
    if status not in RETRY_STATUSES:
        return None
    seconds = retry_after_seconds(retry_after)
    if seconds is None:
        return None
    return min(policy.max_delay, seconds)


def response_message(resp: httpx.Response) -> tuple[str, Any]:
    """The server's ``message`` (mlgate's and ODAHU's error shape), and the decoded body."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
        return body["message"], body
    text = resp.text.strip().splitlines()[0][:300] if resp.text.strip() else ""
    return text or f"{resp.request.method} {resp.request.url} answered {resp.status_code}", body
