"""Revoked tokens: by ``jti``, or every token of a ``sub`` issued before a time.

The control plane keeps the list (SQLite, so it survives restarts) and hands each gateway
process a :class:`RevocationList` whenever it changes — ``mlgate up`` pushes it to its
workers over their link at once. The check (:func:`revoked_reason`) is pure and runs for
every authenticated request, cached token or not: a set lookup and a dict lookup.
A token of a revoked subject without ``iat`` cannot prove it came later, so it is revoked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import AuthError


@dataclass(frozen=True, slots=True)
class RevocationList:
    jtis: frozenset[str] = frozenset()
    subjects: Mapping[str, float] = field(default_factory=dict)
    """``sub`` -> tokens issued (``iat``) before this time (epoch seconds) are revoked."""

    def __bool__(self) -> bool:
        return bool(self.jtis) or bool(self.subjects)


def revoked_reason(claims: Mapping[str, Any], revoked: RevocationList) -> str | None:
    """``jti`` or ``subject`` when the token with these claims is revoked, else None."""
    jti = claims.get("jti")
    if jti is not None and jti in revoked.jtis:
        return "jti"
    sub = claims.get("sub")
    if sub is not None:
        before = revoked.subjects.get(sub)
        if before is not None:
            iat = claims.get("iat")
            if not isinstance(iat, int | float) or isinstance(iat, bool) or iat < before:
                return "subject"
    return None


class Revocations:
    """The current list, replaced whole (the request path only reads it)."""

    def __init__(self, initial: RevocationList | None = None) -> None:
        self.current = initial or RevocationList()
        self.version = 0

    def replace(self, revoked: RevocationList) -> None:
        self.current = revoked
        self.version += 1

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise the 401 of a revoked token."""
        current = self.current
        if not current:
            return
        reason = revoked_reason(claims, current)
        if reason is not None:
            raise TokenRevoked(reason)


class TokenRevoked(AuthError):
    refusal = "revoked"

    def __init__(self, reason: str) -> None:
        super().__init__("token_revoked", "token has been revoked"
                         + (" (its subject's tokens issued before a time)"
                            if reason == "subject" else ""))
        self.reason = reason
