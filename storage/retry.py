"""Exponential backoff with jitter, as a pure function."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, cap: float, rand: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based).

    The ceiling doubles per attempt up to ``cap``; the delay is drawn from the
    upper half of it ("equal jitter"), so writers that failed together spread
    out but none retries at once in a tight loop.
    """
    ceiling = min(cap, base * 2 ** min(attempt, 62))
    r = random.random() if rand is None else rand
    return ceiling * (0.5 + r / 2)
