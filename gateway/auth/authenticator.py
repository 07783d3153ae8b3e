"""Bearer token -> Principal: the verified-token cache in front of parse, keys and checks.

The hot path is one dict lookup: a token verified once is kept (bounded LRU,
keyed by the token string) until its ``exp``, so its signature is not checked
again. The cache is dropped whenever the key set changes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import AuthError
from .jwks import KeySource
from .policy import roles_from_claims
from .tokens import ClaimRules, check_claims, parse_token, verify_signature


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str | None
    roles: frozenset[str]
    claims: Mapping[str, Any]
    expires_at: float | None
    """``exp`` plus leeway: the cached entry is good until then."""


class TokenCache:
    """A bounded LRU of verified tokens."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, Principal] = OrderedDict()

    def get(self, token: str, now: float) -> Principal | None:
        principal = self._entries.get(token)
        if principal is None:
            return None
        if principal.expires_at is not None and now > principal.expires_at:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return principal

    def put(self, token: str, principal: Principal) -> None:
        if self.size <= 0:
            return
        self._entries[token] = principal
        self._entries.move_to_end(token)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class Authenticator:
    def __init__(self, keys: KeySource, rules: ClaimRules, roles_claim: tuple[str, ...],
                 *, cache_size: int = 10_000, max_token_bytes: int = 8192,
                 clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.rules = rules
        self.roles_claim = roles_claim
        self.max_token_bytes = max_token_bytes
        self.cache = TokenCache(cache_size)
        self.verified = 0
        self._clock = clock
        self._keys_version = keys.version

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified before and still valid (no I/O), else None."""
        if self.keys.version != self._keys_version:
            self.cache.clear()
            self._keys_version = self.keys.version
        return self.cache.get(token, self._clock())

    async def authenticate(self, token: str) -> Principal:
        principal = self.cached(token)
        if principal is not None:
            return principal
        now = self._clock()
        if len(token) > self.max_token_bytes:
            raise AuthError("token_too_large",
                            f"token is longer than {self.max_token_bytes} bytes")
        parsed = parse_token(token)
        verify_signature(parsed, await self.keys.keys_for(parsed.kid))
        exp = check_claims(parsed.claims, self.rules, now)
        self.verified += 1
        claims = parsed.claims
        principal = Principal(
            subject=claims.get("sub"), roles=roles_from_claims(claims, self.roles_claim),
            claims=claims, expires_at=None if exp is None else exp + self.rules.leeway)
        self.cache.put(token, principal)
        return principal
