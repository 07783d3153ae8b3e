"""Requests the gateway refused to protect itself or its models: counted, and logged calmly.

Four kinds, each a Prometheus counter with the deployment (``""`` when none was chosen yet)
and the reason:

=================================  ===============================================================
``mlgate_requests_shed_total``     503 at once: ``queue_full`` (every replica at its bound and
                                   ``max_waiting`` waiting), ``cold_start_queue_full``,
                                   ``overload_memory``, ``overload_loop_lag``
``mlgate_requests_rate_limited``   429: the rate limit rule's name, or ``invalid_tokens``
``_total``                         (too many bad tokens from one address)
``mlgate_requests_timed_out``      504: ``deadline_waiting`` (for a replica slot),
``_total``                         ``deadline_cold_start``, ``deadline_upstream`` (the model did not
                                   answer within the deadline), ``read_timeout``
``mlgate_requests_revoked_total``  401 for a revoked token: ``jti`` or ``subject``
=================================  ===============================================================

An error of :mod:`gateway.errors` says which kind it is (its ``refusal`` attribute) and
why (``reason``); the observe filter counts it (:meth:`Refusals.count`). A warning is
logged per kind and reason at most once per ``interval`` seconds with the number since
the last one, so a flood of refusals is one line every ten seconds, not a line each.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger("mlgate.gateway.refusals")

KINDS = {
    "shed": ("mlgate_requests_shed", "Requests answered 503 at once to protect the gateway "
             "or the model (queue full, process overloaded), by reason"),
    "rate_limited": ("mlgate_requests_rate_limited", "Requests answered 429 by a rate "
                     "limit, by rule (invalid_tokens: bad tokens from one address)"),
    "timed_out": ("mlgate_requests_timed_out", "Requests answered 504: their deadline "
                  "passed while waiting or upstream, or the model did not answer in time"),
    "revoked": ("mlgate_requests_revoked", "Requests answered 401 because their token was "
                "revoked (by jti or by subject)"),
}
FAMILIES = frozenset(name for name, _ in KINDS.values())
LOG_INTERVAL = 10.0
WHAT = {"shed": "shed (503)", "rate_limited": "rate limited (429)",
        "timed_out": "timed out (504)", "revoked": "refused a revoked token (401)"}


class Refusals:
    def __init__(self, registry: CollectorRegistry, log_interval: float = LOG_INTERVAL) -> None:
        self.counters = {kind: Counter(name, help_text, ("deployment", "reason"),
                                       registry=registry)
                         for kind, (name, help_text) in KINDS.items()}
        self.log_interval = log_interval
        self._children: dict[tuple[str, str, str], Any] = {}
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}

    def count(self, exc: BaseException, deployment: str) -> None:
        """Count ``exc`` if it is a refusal (its ``refusal`` names the kind)."""
        kind = getattr(exc, "refusal", None)
        if kind is None:
            return
        reason = str(getattr(exc, "reason", "") or getattr(exc, "kind", ""))
        key = (kind, deployment, reason)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.counters[kind].labels(deployment, reason)
        child.inc()
        self._warn(kind, reason, deployment, exc)

    def _warn(self, kind: str, reason: str, deployment: str, exc: BaseException) -> None:
        now = time.monotonic()
        last, since = self._logged.get((kind, reason), (-self.log_interval, 0))
        if now - last < self.log_interval:
            self._logged[(kind, reason)] = (last, since + 1)
            return
        self._logged[(kind, reason)] = (now, 0)
        more = f" ({since} more since the last warning)" if since else ""
        log.warning("%s: %s%s — %s%s", WHAT[kind], reason,
                    f" on deployment {deployment}" if deployment else "", exc, more)
