"""Compact JWS tokens: parse strictly, verify the signature with a bound key, check claims.

All pure: the key set, the rules and the clock are arguments. Every failure is an
:class:`AuthError` whose ``kind`` names the reason.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import AuthError
from .keys import ALGORITHMS, VerifyKey

B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
# Header parameters that would let the token choose its own key, or demand
# processing this verifier does not do. RFC 7515 §4.1.11: unknown "crit" must be refused.
REFUSED_HEADERS = ("jwk", "jku", "x5u", "x5c", "crit")
ACCEPTED_TYP = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})


@dataclass(frozen=True, slots=True)
class ClaimRules:
    issuer: str | None = None
    audiences: frozenset[str] = frozenset()
    leeway: float = 30.0
    require_exp: bool = True


@dataclass(frozen=True, slots=True)
class ParsedToken:
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return self.header["alg"]

    @property
    def kid(self) -> str | None:
        return self.header.get("kid")


def _malformed(why: str) -> AuthError:
    return AuthError("token_malformed", f"token is malformed: {why}")


def _b64decode(part: str, what: str) -> bytes:
    if not B64URL.match(part) or len(part) % 4 == 1:
        raise _malformed(f"{what} is not base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise _malformed(f"{what} is not base64url") from None


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _malformed(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise _malformed(f"{what} is not a JSON object")
    return value


def parse_token(token: str) -> ParsedToken:
    """Split and decode; checks the header's shape, not the signature."""
    parts = token.split(".")
    if len(parts) != 3:
        raise _malformed("expected three dot-separated parts (JWS compact serialization)"
                         if len(parts) != 5 else "encrypted tokens (JWE) are not accepted")
    header = _json_object(_b64decode(parts[0], "header"), "header")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise _malformed("header has no alg")
    if alg.lower() == "none":
        raise AuthError("alg_not_allowed", "unsigned tokens (alg none) are not accepted")
    refused = [h for h in REFUSED_HEADERS if h in header]
    if refused:
        raise AuthError("unsupported_header",
                        f"token header parameter(s) {', '.join(refused)} are not accepted: keys "
                        "come only from the configured issuer and no extensions are understood")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _malformed("kid is not a string")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYP):
        raise AuthError("unsupported_header", f"token typ {typ!r} is not a JWT")
    claims = _json_object(_b64decode(parts[1], "payload"), "payload")
    signature = _b64decode(parts[2], "signature")
    if not signature:
        raise _malformed("signature is empty")
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    return ParsedToken(header, claims, signing_input, signature)


def verify_signature(token: ParsedToken, keys: Sequence[VerifyKey]) -> VerifyKey:
    """The key that verified ``token``; ``AuthError`` otherwise.

    ``keys`` are the candidates for the token's kid (``keys.candidates``), already
    refreshed by the caller when the kid was unknown. Only keys bound to the token's
    ``alg`` are tried.
    """
    alg = token.alg
    algorithm = ALGORITHMS.get(alg)
    if algorithm is None:
        raise AuthError("alg_not_allowed", f"token algorithm {alg!r} is not supported")
    usable = [k for k in keys if alg in k.algorithms]
    if not usable:
        if keys:
            allowed = sorted(set().union(*(k.algorithms for k in keys)))
            raise AuthError("alg_not_allowed",
                            f"token algorithm {alg} is not allowed for its key "
                            f"(allowed: {', '.join(allowed)})")
        if token.kid is not None:
            raise AuthError("unknown_kid", f"no key with kid {token.kid!r} is known")
        raise AuthError("alg_not_allowed",
                        f"token algorithm {alg} does not match any configured key")
    for key in usable:
        try:
            if algorithm.verify(token.signing_input, key.key, token.signature):
                return key
        except (ValueError, TypeError):
            continue
    raise AuthError("bad_signature", "token signature does not verify")


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthError("claims_invalid", f"claim {name} must be a number (seconds since epoch)")
    return float(value)


def check_claims(claims: Mapping[str, Any], rules: ClaimRules, now: float) -> float | None:
    """Time, issuer and audience checks; returns ``exp`` (None if absent and allowed)."""
    exp = _number(claims, "exp")
    nbf = _number(claims, "nbf")
    _number(claims, "iat")
    if exp is None:
        if rules.require_exp:
            raise AuthError("claims_invalid", "token has no exp claim; tokens must expire")
    elif now > exp + rules.leeway:
        raise AuthError("token_expired", "token expired")
    if nbf is not None and now + rules.leeway < nbf:
        raise AuthError("token_not_yet_valid", "token is not valid yet (nbf is in the future)")
    if rules.issuer is not None:
        iss = claims.get("iss")
        if iss != rules.issuer:
            raise AuthError("wrong_issuer",
                            "token has no issuer" if iss is None else "token issuer is not trusted")
    if rules.audiences:
        aud = claims.get("aud")
        given = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else None
        if given is None:
            raise AuthError("wrong_audience", "token has no audience")
        if not any(isinstance(a, str) and a in rules.audiences for a in given):
            raise AuthError("wrong_audience", "token is not for this audience")
    sub = claims.get("sub")
    if sub is not None and not isinstance(sub, str):
        raise AuthError("claims_invalid", "claim sub must be a string")
    return exp
