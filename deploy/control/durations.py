"""Durations in specs: a number of seconds (``30``, ``"30"``), or text such as ``500ms``,
``30s``, ``5m``, ``1h``, ``1d`` or ``1h30m`` (pure)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_SECONDS = re.compile(r"\d+(?:\.\d+)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """Seconds from a positive number or a string such as ``30s``, ``5m``, ``1h30m``, ``1d``."""
    problem = f"must be a duration such as 30s, 5m or 1h, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(problem)
    if isinstance(value, str):
        text = value.strip()
        if _SECONDS.fullmatch(text):
            return parse_duration(float(text))
        if not _DURATION.fullmatch(text):
            raise ValueError(problem)
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    else:
        seconds = float(value)
    if not 0 < seconds < float("inf"):
        raise ValueError(f"must be a positive duration, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest ``1h30m``-style text for a number of seconds (parses back to it)."""
    if not float(seconds).is_integer():
        return f"{Decimal(repr(float(seconds))):f}s"
    rest, out = int(seconds), ""
    for unit in ("d", "h", "m", "s"):
        count, rest = divmod(rest, _UNIT_SECONDS[unit])
        if count:
            out += f"{count}{unit}"
    return out or "0s"
