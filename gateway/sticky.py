"""Sticky assignment: a request's key (a header, a cookie or a JWT claim) -> a fixed position.

The position is a number in ``[0, 1)`` derived from a keyed BLAKE2b hash of the
key, keyed with the route id: the same key always gets the same position on
one route, and positions on two routes are independent (two experiments do not
split users the same way). :mod:`gateway.traffic` lays the route's weights on
``[0, 1)`` and picks the target covering the position, so a user keeps a
variant while the weights stay the same.

Pure functions only; the request's headers, cookies and claims come in as plain
mappings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SOURCES = ("header", "cookie", "claim")
MAX_KEY_BYTES = 1024
_SCALE = float(1 << 64)


@dataclass(frozen=True, slots=True)
class StickyKey:
    """Where a route reads its sticky key: ``source`` is header, cookie or claim."""

    source: str
    name: str

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"sticky source must be one of {', '.join(SOURCES)}, "
                             f"got {self.source!r}")
        if not self.name:
            raise ValueError("sticky key needs a name")


def key_position(salt: str, key: str) -> float:
    """A uniform position in ``[0, 1)`` for ``key``, fixed for a given ``salt``."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass")[:MAX_KEY_BYTES],
                             digest_size=8, key=salt.encode("utf-8")[:64]).digest()
    return int.from_bytes(digest, "big") / _SCALE


def sticky_value(sticky: StickyKey, headers: Mapping[str, str], cookies: Mapping[str, str],
                 claims: Mapping[str, Any] | None) -> str | None:
    """The request's key for ``sticky``, or None when the request does not carry one.

    Header names are matched without regard to case (pass a case-insensitive
    mapping); an empty value counts as none. A claim must be a string or an integer.
    """
    if sticky.source == "header":
        value: Any = headers.get(sticky.name)
    elif sticky.source == "cookie":
        value = cookies.get(sticky.name)
    else:
        value = claims.get(sticky.name) if claims is not None else None
        if isinstance(value, bool) or not isinstance(value, str | int):
            return None
        value = str(value)
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None
