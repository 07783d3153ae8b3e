"""Token factory and the table of hostile tokens, shared by the unit and end-to-end suites.

Every case builds its token from an :class:`Issuer` (the keys the gateway trusts) and
names the reason the gateway must give, or None when the token must be accepted.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm, get_default_algorithms

ISSUER = "https://issuer.test/realms/mlgate"
AUDIENCE = "mlgate-gateway"
ALGS = get_default_algorithms()


def b64(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64(json.dumps(value, separators=(",", ":")))


def sign(header: dict[str, Any], claims: Any, key: Any, alg: str | None = None) -> str:
    signing_input = f"{b64json(header)}.{b64json(claims)}"
    algorithm = ALGS[alg or header["alg"]]
    return f"{signing_input}.{b64(algorithm.sign(signing_input.encode(), key))}"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class Issuer:
    """An OIDC-like issuer: an RSA key and an EC key, published as a JWKS."""

    rsa: rsa.RSAPrivateKey = field(default_factory=rsa_key)
    ec: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(
        ec.SECP256R1()))
    rsa_kid: str = "rsa-1"
    ec_kid: str = "ec-1"
    issuer: str = ISSUER
    audience: str = AUDIENCE

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec.public_key()))
        return {"keys": [{**rsa_jwk, "kid": self.rsa_kid, "use": "sig"},
                         {**ec_jwk, "kid": self.ec_kid, "alg": "ES256"}]}

    def claims(self, roles: tuple[str, ...] = ("admin",), **override: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": self.audience, "sub": "alice", "iat": now,
                  "nbf": now - 1, "exp": now + 600, "realm_access": {"roles": list(roles)}}
        claims.update(override)
        return {k: v for k, v in claims.items() if v is not DROP}

    def token(self, claims: dict[str, Any] | None = None, *, alg: str = "RS256",
              **header: Any) -> str:
        key = self.ec if alg.startswith("ES") else self.rsa
        head = {"alg": alg, "typ": "JWT", "kid": self.ec_kid if alg.startswith("ES")
                else self.rsa_kid, **header}
        head = {k: v for k, v in head.items() if v is not DROP}
        return sign(head, claims if claims is not None else self.claims(), key)


DROP = object()


def _hs256_with_public_key(i: Issuer, kid: Any = None) -> str:
    """The classic confusion: HMAC keyed with the RSA public key the verifier holds."""
    header = {"alg": "HS256", "typ": "JWT", "kid": i.rsa_kid if kid is None else kid}
    return sign({k: v for k, v in header.items() if v is not DROP}, i.claims(), public_pem(i.rsa))


def _embedded_jwk(i: Issuer) -> str:
    attacker = rsa_key()
    jwk = json.loads(RSAAlgorithm.to_jwk(attacker.public_key()))
    return sign({"alg": "RS256", "typ": "JWT", "jwk": jwk}, i.claims(), attacker)


def _tampered(i: Issuer) -> str:
    head, _payload, sig = i.token(i.claims(roles=("viewer",))).split(".")
    return f"{head}.{b64json(i.claims(roles=('admin',)))}.{sig}"


def _unsigned(alg: str) -> Callable[[Issuer], str]:
    return lambda i: f"{b64json({'alg': alg, 'typ': 'JWT'})}.{b64json(i.claims())}."


@dataclass(frozen=True)
class Attack:
    name: str
    build: Callable[[Issuer], str]
    reason: str | None  # None: must be accepted


ATTACKS = [
    Attack("valid RS256", lambda i: i.token(), None),
    Attack("valid ES256", lambda i: i.token(alg="ES256"), None),
    Attack("valid PS256 with the RSA key", lambda i: i.token(alg="PS256"), None),
    Attack("audience list containing ours",
           lambda i: i.token(i.claims(aud=["other", AUDIENCE])), None),
    Attack("expired within leeway", lambda i: i.token(i.claims(exp=int(time.time()) - 5)), None),
    Attack("expired", lambda i: i.token(i.claims(exp=int(time.time()) - 3600)), "token_expired"),
    Attack("nbf in the future",
           lambda i: i.token(i.claims(nbf=int(time.time()) + 3600)), "token_not_yet_valid"),
    Attack("no exp", lambda i: i.token(i.claims(exp=DROP)), "claims_invalid"),
    Attack("exp is a string", lambda i: i.token(i.claims(exp="never")), "claims_invalid"),
    Attack("wrong issuer", lambda i: i.token(i.claims(iss="https://evil.test")), "wrong_issuer"),
    Attack("no issuer", lambda i: i.token(i.claims(iss=DROP)), "wrong_issuer"),
    Attack("wrong audience", lambda i: i.token(i.claims(aud="someone-else")), "wrong_audience"),
    Attack("no audience", lambda i: i.token(i.claims(aud=DROP)), "wrong_audience"),
    Attack("alg none", _unsigned("none"), "alg_not_allowed"),
    Attack("alg NoNe", _unsigned("NoNe"), "alg_not_allowed"),
    Attack("alg none with a signature",
           lambda i: _unsigned("none")(i) + "c2lnbmF0dXJl", "alg_not_allowed"),
    Attack("HS256 keyed with the RSA public key", _hs256_with_public_key, "alg_not_allowed"),
    Attack("HS256 keyed with the RSA public key, no kid",
           lambda i: _hs256_with_public_key(i, kid=DROP), "alg_not_allowed"),
    Attack("RS256 on the EC key's kid", lambda i: sign(
        {"alg": "RS256", "kid": i.ec_kid}, i.claims(), i.rsa), "alg_not_allowed"),
    Attack("signed by another key under our kid",
           lambda i: sign({"alg": "RS256", "kid": i.rsa_kid}, i.claims(), rsa_key()),
           "bad_signature"),
    Attack("unknown kid", lambda i: i.token(kid="not-a-key"), "unknown_kid"),
    Attack("kid is not a string", lambda i: i.token(kid=7), "token_malformed"),
    Attack("roles escalated after signing", _tampered, "bad_signature"),
    Attack("truncated signature", lambda i: i.token()[:-20], "bad_signature"),
    Attack("truncated to two parts", lambda i: i.token().rsplit(".", 1)[0], "token_malformed"),
    Attack("garbage base64", lambda i: "!!!.@@@.###", "token_malformed"),
    Attack("header is not JSON",
           lambda i: f"{b64('not json')}.{b64json(i.claims())}.c2ln", "token_malformed"),
    Attack("payload is a JSON array",
           lambda i: sign({"alg": "RS256", "kid": i.rsa_kid}, [1, 2], i.rsa), "token_malformed"),
    Attack("JWE (five parts)", lambda i: "a.b.c.d.e", "token_malformed"),
    Attack("huge token", lambda i: i.token(i.claims(pad="x" * 7_000)), "token_too_large"),
    Attack("crit header", lambda i: i.token(crit=["exp"]), "unsupported_header"),
    Attack("embedded jwk header", _embedded_jwk, "unsupported_header"),
    Attack("jku header", lambda i: i.token(jku="https://evil.test/jwks"), "unsupported_header"),
    Attack("x5c header", lambda i: i.token(x5c=["MIIB"]), "unsupported_header"),
    Attack("typ is not a JWT", lambda i: i.token(typ="JWE"), "unsupported_header"),
]
