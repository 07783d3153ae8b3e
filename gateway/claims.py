"""Reading a token's claims by path: what the policy's roles claim and the rate limits'
``claim:<path>`` keys both name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The claim at ``path``: a top-level claim of that exact name (Auth0's namespaced
    ``https://example.com/roles``), else ``a.b.c`` walked through nested objects."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value
