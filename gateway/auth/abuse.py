"""Repeated invalid tokens from one client address are rate-limited too.

Each token that fails verification takes a token from its client address's bucket
(``invalid_token_rate`` a second, ``invalid_token_burst`` at most, in the same bucket
store as the rate limits, so shared by every gateway process). While the bucket is
empty, that address's tokens that were not verified before are refused with 429 and
``Retry-After`` before any signature is checked: guessing costs the guesser, not the
gateway. Tokens already verified (cached) keep working, so one bad client behind a
shared address does not lock out the others' sessions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..buckets import Buckets
from ..ratelimit import RateLimited

REASON = "invalid_tokens"


@dataclass(frozen=True, slots=True)
class InvalidTokenLimit:
    rate: float = 0.5
    """Invalid tokens a second an address may send once its burst is spent; 0: no limit."""
    burst: int = 20

    def __post_init__(self) -> None:
        if self.rate < 0 or self.burst < 1:
            raise ValueError("invalid token rate must be >= 0 and burst >= 1")


class InvalidTokens:
    def __init__(self, limit: InvalidTokenLimit, buckets: Buckets) -> None:
        self.limit = limit
        self.buckets = buckets
        self._interval = 1.0 / limit.rate if limit.rate else 0.0

    def _key(self, address: str | None) -> bytes:
        return f"{REASON}\0{address or '?'}".encode()

    def check(self, address: str | None) -> None:
        """429 while ``address`` has spent its invalid tokens."""
        if not self._interval:
            return
        take = self.buckets.peek(self._key(address), self._interval, self.limit.burst)
        if not take.allowed:
            wait = max(1, math.ceil(take.retry_after))
            raise RateLimited(f"too many invalid tokens from this address; retry after {wait}s",
                              REASON, {"Retry-After": str(wait)})

    def failed(self, address: str | None) -> None:
        """A token from ``address`` did not verify."""
        if self._interval:
            self.buckets.take(self._key(address), self._interval, self.limit.burst)
