"""The gateway's authentication settings, validated once and shared by every request."""

from __future__ import annotations

from dataclasses import dataclass

from .jwks import JwksSettings
from .keys import VerifyKey
from .policy import DEFAULT_POLICY, DEFAULT_ROLES_CLAIM, Policy
from .tokens import ClaimRules


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Exactly one key source: ``static_keys`` (file, PEM, secret) or ``jwks`` (a URL)."""

    rules: ClaimRules
    static_keys: tuple[VerifyKey, ...] = ()
    jwks: JwksSettings | None = None
    policy: Policy = DEFAULT_POLICY
    roles_claim: tuple[str, ...] = DEFAULT_ROLES_CLAIM
    token_cache_size: int = 10_000
    max_token_bytes: int = 8192

    def __post_init__(self) -> None:
        if bool(self.static_keys) == (self.jwks is not None):
            raise ValueError("auth needs exactly one key source: static keys or a JWKS URL")
        if not self.roles_claim:
            raise ValueError("roles_claim needs at least one claim path")
        if self.token_cache_size < 0 or self.max_token_bytes < 256:
            raise ValueError("token_cache_size must be >= 0 and max_token_bytes >= 256")
