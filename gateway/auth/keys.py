"""Verification keys, parsed once: each bound to the algorithms it may verify.

Binding keys to algorithms is what stops algorithm confusion: an RSA public key
never verifies an ``HS256`` token (whose "secret" would be the public key
itself), an HMAC secret never verifies an ``RS256`` one, and ``none`` is in no
key's set. A JWK's ``alg`` narrows its set to that one algorithm.
PyJWT does the cryptography (``jwt.algorithms``); this module only decides
which key may be used how.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jwt.algorithms import get_default_algorithms
from jwt.exceptions import InvalidKeyError, PyJWKError

log = logging.getLogger("mlgate.auth")

ALGORITHMS = {name: alg for name, alg in get_default_algorithms().items() if name != "none"}
RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
HMAC_ALGS = frozenset({"HS256", "HS384", "HS512"})
EC_ALGS_BY_CURVE = {"P-256": frozenset({"ES256"}), "P-384": frozenset({"ES384"}),
                    "P-521": frozenset({"ES512"})}
OKP_ALGS = frozenset({"EdDSA"})
MIN_HMAC_SECRET_BYTES = 32


class KeyConfigError(ValueError):
    """A key could not be used; the message says which and why."""


@dataclass(frozen=True, slots=True)
class VerifyKey:
    kid: str | None
    algorithms: frozenset[str]
    key: Any

    def __repr__(self) -> str:  # never print key material
        return f"VerifyKey(kid={self.kid!r}, algorithms={sorted(self.algorithms)})"


def key_from_secret(secret: str | bytes, kid: str | None = None) -> VerifyKey:
    raw = secret.encode() if isinstance(secret, str) else secret
    if len(raw) < MIN_HMAC_SECRET_BYTES:
        raise KeyConfigError(f"the HS256 secret must be at least {MIN_HMAC_SECRET_BYTES} bytes "
                        f"(RFC 7518 §3.2), got {len(raw)}")
    try:
        key = ALGORITHMS["HS256"].prepare_key(raw)
    except InvalidKeyError as exc:
        raise KeyConfigError(f"the HS256 secret is not usable: {exc}") from None
    return VerifyKey(kid, HMAC_ALGS, key)


def key_from_pem(pem: str | bytes, kid: str | None = None) -> VerifyKey:
    """A PEM public key (or certificate) for RS*/PS*, ES* or EdDSA tokens."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.x509 import load_pem_x509_certificate

    data = pem.encode() if isinstance(pem, str) else pem
    try:
        if b"CERTIFICATE" in data:
            public = load_pem_x509_certificate(data).public_key()
        else:
            public = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyConfigError(f"not a PEM public key or certificate: {exc}") from None
    if isinstance(public, rsa.RSAPublicKey):
        return VerifyKey(kid, RSA_ALGS, public)
    if isinstance(public, ec.EllipticCurvePublicKey):
        curve = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(
            public.curve.name)
        if curve is None:
            raise KeyConfigError(f"unsupported EC curve {public.curve.name}")
        return VerifyKey(kid, EC_ALGS_BY_CURVE[curve], public)
    if isinstance(public, ed25519.Ed25519PublicKey):
        return VerifyKey(kid, OKP_ALGS, public)
    raise KeyConfigError(f"unsupported public key type {type(public).__name__}")


def key_from_jwk(jwk: Mapping[str, Any]) -> VerifyKey:
    """One public JWK. Symmetric (``oct``) and encryption-only keys are refused."""
    kty = jwk.get("kty")
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise KeyConfigError("kid must be a string")
    use = jwk.get("use")
    if use not in (None, "sig"):
        raise KeyConfigError(f"key {kid!r} is for use {use!r}, not signatures")
    if kty == "RSA":
        family = RSA_ALGS
    elif kty == "EC":
        family = EC_ALGS_BY_CURVE.get(jwk.get("crv"), frozenset())
    elif kty == "OKP" and jwk.get("crv") == "Ed25519":
        family = OKP_ALGS
    elif kty == "oct":
        raise KeyConfigError(f"key {kid!r} is symmetric; a published key set must hold public keys")
    else:
        raise KeyConfigError(f"key {kid!r} has unsupported kty/crv {kty!r}/{jwk.get('crv')!r}")
    if not family:
        raise KeyConfigError(f"key {kid!r} has unsupported curve {jwk.get('crv')!r}")
    alg = jwk.get("alg")
    if alg is not None:
        if alg not in family:
            raise KeyConfigError(f"key {kid!r} declares alg {alg!r}, which does not fit kty {kty}")
        family = frozenset({alg})
    if any(k in jwk for k in ("d", "p", "q", "dp", "dq", "qi")):
        raise KeyConfigError(f"key {kid!r} contains private parameters; publish public keys only")
    algorithm = ALGORITHMS[next(iter(sorted(family)))]
    try:
        key = algorithm.from_jwk(dict(jwk))
    except (InvalidKeyError, PyJWKError, ValueError, TypeError) as exc:
        raise KeyConfigError(f"key {kid!r} is malformed: {exc}") from None
    return VerifyKey(kid, family, key)


def keys_from_jwks(doc: Any, source: str = "JWKS") -> tuple[VerifyKey, ...]:
    """Every usable key of a JWKS document; unusable ones are logged and skipped."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("keys"), list):
        raise KeyConfigError(f"{source} is not a JWK set (an object with a 'keys' list)")
    keys: list[VerifyKey] = []
    for jwk in doc["keys"]:
        if not isinstance(jwk, Mapping):
            log.warning("%s: skipping an entry that is not an object", source)
            continue
        try:
            keys.append(key_from_jwk(jwk))
        except KeyConfigError as exc:
            log.warning("%s: skipping key: %s", source, exc)
    return tuple(keys)


def candidates(keys: Sequence[VerifyKey], kid: str | None) -> list[VerifyKey]:
    """Keys that may verify a token with this ``kid``.

    A key configured without a kid (a PEM file, a secret) is a candidate for every
    token; a key with one only for tokens naming it. A token without a kid (single-key
    issuers often omit it) may be verified by any key; the verifier then tries only
    those bound to the token's ``alg``.
    """
    if kid is None:
        return list(keys)
    return [k for k in keys if k.kid == kid or k.kid is None]
