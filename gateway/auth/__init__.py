"""Authentication (bearer JWT) and authorization (roles policy) for the gateway.

A filter orchestrates; the work lives beside it, as in Envoy's ``jwt_authn``:
``tokens`` (parse, signature, claims), ``keys`` (keys bound to algorithms),
``jwks`` (key sources and the JWKS cache), ``authenticator`` (verified-token cache),
``classify`` (request -> action on resource), ``policy`` (the decision),
``revocation`` (revoked tokens), ``abuse`` (addresses sending invalid tokens),
``filters`` (the two aiohttp middlewares).
"""

from .abuse import InvalidTokenLimit, InvalidTokens
from .authenticator import Authenticator, Principal, TokenCache
from .classify import Classified, classify
from .config import AuthConfig
from .errors import AuthError, BadAuthRequest, Forbidden
from .filters import PRINCIPAL_KEY, ROUTE_ID_KEY, make_authn_filter, make_authz_filter
from .jwks import JwksClient, JwksSettings, KeySource, StaticKeys
from .keys import (
    KeyConfigError,
    VerifyKey,
    key_from_jwk,
    key_from_pem,
    key_from_secret,
    keys_from_jwks,
)
from .policy import (
    ACTIONS,
    DEFAULT_POLICY,
    DEFAULT_ROLES_CLAIM,
    Access,
    Decision,
    Policy,
    PolicyError,
    Resource,
    Rule,
    decide,
    parse_policy,
    roles_from_claims,
)
from .revocation import RevocationList, Revocations, TokenRevoked, revoked_reason
from .tokens import ClaimRules

__all__ = [
    "ACTIONS",
    "DEFAULT_POLICY",
    "DEFAULT_ROLES_CLAIM",
    "PRINCIPAL_KEY",
    "ROUTE_ID_KEY",
    "Access",
    "AuthConfig",
    "AuthError",
    "Authenticator",
    "BadAuthRequest",
    "ClaimRules",
    "Classified",
    "Decision",
    "Forbidden",
    "InvalidTokenLimit",
    "InvalidTokens",
    "JwksClient",
    "JwksSettings",
    "KeyConfigError",
    "KeySource",
    "Policy",
    "PolicyError",
    "Principal",
    "Resource",
    "RevocationList",
    "Revocations",
    "Rule",
    "StaticKeys",
    "TokenCache",
    "TokenRevoked",
    "VerifyKey",
    "classify",
    "decide",
    "key_from_jwk",
    "key_from_pem",
    "key_from_secret",
    "keys_from_jwks",
    "make_authn_filter",
    "make_authz_filter",
    "parse_policy",
    "revoked_reason",
    "roles_from_claims",
]
