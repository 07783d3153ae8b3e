"""A deployment's own admission bounds and rate limit, from its ``mlgate.io/*`` annotations.

Like the autoscaler's annotations (:mod:`deploy.control.autoscaler`), they override the
configured defaults (``admission:`` in ``mlgate.yaml``) for one deployment; pure
functions, validated when the deployment is written:

===========================================  ===================================================
``mlgate.io/max-in-flight-per-replica``      requests sent to one replica at once (0: no bound)
``mlgate.io/max-waiting``                    requests waiting for a replica (0: none waits)
``mlgate.io/timeout``                        seconds a request may take without a client deadline
``mlgate.io/max-timeout``                    the longest ``x-mlgate-timeout-ms`` honoured (seconds)
``mlgate.io/rate-limit``                     the deployment's own rate limit: ``50``, ``50/s``,
                                             ``600/m`` ...
``mlgate.io/rate-limit-burst``               its bucket size (default: one second's worth)
``mlgate.io/rate-limit-key``                 whose bucket: ``sub`` (default), ``claim:<path>``,
                                             ``address``, ``all`` (every caller together)
===========================================  ===================================================
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from gateway import Admission, RateRule, parse_rate

MAX_IN_FLIGHT = "mlgate.io/max-in-flight-per-replica"
MAX_WAITING = "mlgate.io/max-waiting"
TIMEOUT = "mlgate.io/timeout"
MAX_TIMEOUT = "mlgate.io/max-timeout"
RATE_LIMIT = "mlgate.io/rate-limit"
RATE_LIMIT_BURST = "mlgate.io/rate-limit-burst"
RATE_LIMIT_KEY = "mlgate.io/rate-limit-key"

_COUNTS = {MAX_IN_FLIGHT: "max_in_flight_per_replica", MAX_WAITING: "max_waiting"}
_SECONDS = {TIMEOUT: "timeout", MAX_TIMEOUT: "max_timeout"}
ANNOTATIONS = frozenset({*_COUNTS, *_SECONDS, RATE_LIMIT, RATE_LIMIT_BURST, RATE_LIMIT_KEY})
RULE_NAME = "deployment"
"""The name of a deployment's own rate limit (in ``RateLimit-Policy`` and the metrics)."""


def protection_errors(annotations: Mapping[str, str]) -> list[str]:
    """Problems with these annotations (the others are not looked at)."""
    errors = []
    for key in _COUNTS:
        if key in annotations and _count(annotations[key]) is None:
            errors.append(f"annotation {key} must be a whole number >= 0, got "
                          f"{annotations[key]!r}")
    for key in _SECONDS:
        if key in annotations and _seconds(annotations[key]) is None:
            errors.append(f"annotation {key} must be a number of seconds > 0, got "
                          f"{annotations[key]!r}")
    if RATE_LIMIT in annotations:
        try:
            rate_limits_for("x", annotations)
        except ValueError as exc:
            errors.append(f"annotations {RATE_LIMIT}*: {exc}")
    elif RATE_LIMIT_BURST in annotations or RATE_LIMIT_KEY in annotations:
        errors.append(f"annotations {RATE_LIMIT_BURST} and {RATE_LIMIT_KEY} need {RATE_LIMIT}")
    return errors


def admission_for(defaults: Admission, annotations: Mapping[str, str]) -> Admission:
    """``defaults`` with the deployment's overrides (annotations already validated)."""
    overrides: dict[str, object] = {}
    for key, name in _COUNTS.items():
        if key in annotations:
            overrides[name] = _count(annotations[key])
    for key, name in _SECONDS.items():
        if key in annotations:
            overrides[name] = _seconds(annotations[key])
    return dataclasses.replace(defaults, **overrides) if overrides else defaults


def rate_limits_for(dep_id: str, annotations: Mapping[str, str]) -> tuple[RateRule, ...]:
    """The deployment's own rate limit, if its annotations set one (``ValueError`` if bad)."""
    if RATE_LIMIT not in annotations:
        return ()
    rate = parse_rate(annotations[RATE_LIMIT])
    burst_text = annotations.get(RATE_LIMIT_BURST)
    burst = max(1, math.ceil(rate)) if burst_text is None else _count(burst_text)
    if not burst:
        raise ValueError(f"{RATE_LIMIT_BURST} must be a whole number >= 1, got {burst_text!r}")
    return (RateRule(RULE_NAME, rate, burst, annotations.get(RATE_LIMIT_KEY, "sub"),
                     deployments=(dep_id,)),)


def _count(text: str) -> int | None:
    try:
        value = int(str(text).strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None
