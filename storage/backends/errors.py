"""Which failures are worth retrying, from an HTTP status or error code (pure)."""

from __future__ import annotations

RETRYABLE_CODES = frozenset({
    "RequestTimeout", "RequestTimeTooSkewed", "SlowDown", "Throttling", "ThrottlingException",
    "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequests",
})


def is_retryable_status(status: int | None, code: str = "") -> bool:
    """5xx, 408 and 429 (and throttling codes) may pass; other 4xx need a fix first."""
    if code in RETRYABLE_CODES:
        return True
    if status is None:
        return True
    return status >= 500 or status in (408, 429)
