"""Key material for ``mlgate up``: the local signing key, tokens, and the gateway's auth config.

Secure by default: with no key source configured, ``mlgate up`` creates an RS256
key pair under ``<data_dir>/keys/`` (directory 0700, private key 0600) and accepts
only tokens signed by it, issued by ``mlgate`` for the audience ``mlgate``;
``mlgate token`` signs such tokens. Turning authentication off takes an explicit
``auth: {enabled: false}``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import re
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
import orjson
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from deploy.config import AuthSettings, ConfigError, Settings
from gateway import (
    DEFAULT_POLICY,
    AuthConfig,
    ClaimRules,
    JwksSettings,
    KeyConfigError,
    Policy,
    PolicyError,
    key_from_pem,
    key_from_secret,
    keys_from_jwks,
    parse_policy,
)

log = logging.getLogger("mlgate")

LOCAL_ISSUER = "mlgate"
LOCAL_AUDIENCE = "mlgate"
KEY_DIR = "keys"
PRIVATE_KEY_FILE = "jwt-signing-key.pem"
PUBLIC_KEY_FILE = "jwt-signing-key.pub.pem"
RSA_BITS = 2048
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90``, ``30s``, ``15m``, ``1h``, ``7d`` -> seconds."""
    m = _DURATION.match(text)
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 1h, 7d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def private_key_path(data_dir: Path) -> Path:
    return Path(data_dir) / KEY_DIR / PRIVATE_KEY_FILE


def ensure_local_keypair(data_dir: Path) -> rsa.RSAPrivateKey:
    """The data dir's signing key, created (0600) if missing; safe against a concurrent creator."""
    path = private_key_path(data_dir)
    if path.exists():
        return load_private_key(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if another process created it first: use theirs
        except FileExistsError:
            return load_private_key(path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    (path.parent / PUBLIC_KEY_FILE).write_bytes(public)
    log.info("created the local token signing key %s", path)
    return key


def load_private_key(path: Path) -> rsa.RSAPrivateKey:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("%s is readable by others (mode %o); chmod 600 it", path, mode)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{path} is not an RSA private key")
    return key


def rsa_thumbprint(public: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint, used as the key's ``kid``."""
    numbers = public.public_numbers()

    def b64(n: int) -> str:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    canonical = orjson.dumps({"e": b64(numbers.e), "kty": "RSA", "n": b64(numbers.n)},
                             option=orjson.OPT_SORT_KEYS)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def roles_claims(roles: Sequence[str], roles_claim: str) -> dict[str, Any]:
    """``a.b`` -> ``{"a": {"b": roles}}``; a URL-like claim name (Auth0) stays flat."""
    if "://" in roles_claim or "." not in roles_claim:
        return {roles_claim: list(roles)}
    out: dict[str, Any] = {}
    node = out
    parts = roles_claim.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = list(roles)
    return out


def mint_token(auth: AuthSettings, data_dir: Path, *, roles: Sequence[str], subject: str,
               ttl: float, now: float | None = None) -> str:
    """A token the gateway configured by ``auth`` accepts (local key pair or HS256 secret)."""
    if auth.jwks_url or auth.jwks_file or auth.public_key_file:
        raise ConfigError("this mlgate verifies tokens from an external issuer "
                          "(auth.jwks_url/jwks_file/public_key_file): get tokens from it")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": auth.issuer or LOCAL_ISSUER, "aud": (auth.audience or (LOCAL_AUDIENCE,))[0],
        "sub": subject, "iat": issued, "nbf": issued, "exp": issued + int(ttl),
        "jti": secrets.token_urlsafe(16),  # what `mlgate token revoke` names
        **roles_claims(roles, auth.roles_claim[0]),
    }
    if auth.hs256_secret:
        return jwt.encode(claims, auth.hs256_secret.encode(), algorithm="HS256",
                          headers={"typ": "JWT"})
    key = ensure_local_keypair(data_dir)
    return jwt.encode(claims, key, algorithm="RS256",
                      headers={"typ": "JWT", "kid": rsa_thumbprint(key.public_key())})


def load_policy(path: str | None) -> Policy:
    if path is None:
        return DEFAULT_POLICY
    try:
        doc = yaml.safe_load(Path(path).read_text())
        return parse_policy(doc, path)
    except (OSError, yaml.YAMLError, PolicyError) as exc:
        raise ConfigError(f"auth.policy_file: {exc}") from exc


def build_auth_config(settings: Settings) -> AuthConfig | None:
    """The gateway's AuthConfig from ``settings.auth``; None when auth is explicitly off."""
    auth = settings.auth
    if not auth.enabled:
        return None
    policy = load_policy(auth.policy_file)
    issuer, audiences = auth.issuer, frozenset(auth.audience)
    static = ()
    jwks = None
    try:
        if auth.jwks_url:
            jwks = JwksSettings(auth.jwks_url, ttl=auth.jwks_cache_ttl,
                                min_refresh_interval=auth.jwks_refresh_min_interval,
                                timeout=auth.jwks_timeout,
                                retired_key_grace=auth.jwks_retired_key_grace)
        elif auth.jwks_file:
            static = keys_from_jwks(orjson.loads(Path(auth.jwks_file).read_bytes()),
                                    auth.jwks_file)
            if not static:
                raise ConfigError(f"auth.jwks_file {auth.jwks_file}: no usable key")
        elif auth.public_key_file:
            static = (key_from_pem(Path(auth.public_key_file).read_bytes()),)
        elif auth.hs256_secret:
            static = (key_from_secret(auth.hs256_secret),)
        else:
            key = ensure_local_keypair(settings.data_path)
            public = key.public_key()
            pem = public.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
            static = (key_from_pem(pem, kid=rsa_thumbprint(public)),)
            issuer = issuer or LOCAL_ISSUER
            audiences = audiences or frozenset({LOCAL_AUDIENCE})
    except (OSError, orjson.JSONDecodeError, KeyConfigError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"auth: {exc}") from exc
    unchecked = [name for name, value in (("issuer", issuer), ("audience", audiences))
                 if not value]
    if unchecked:
        log.warning("auth: no %s configured, so it is not checked: any token this key source "
                    "signed is accepted", " or ".join(unchecked))
    rules = ClaimRules(issuer=issuer, audiences=audiences, leeway=auth.leeway,
                       require_exp=auth.require_exp)
    try:
        return AuthConfig(rules=rules, static_keys=tuple(static), jwks=jwks, policy=policy,
                          roles_claim=auth.roles_claim, token_cache_size=auth.token_cache_size,
                          max_token_bytes=auth.max_token_bytes)
    except ValueError as exc:
        raise ConfigError(f"auth: {exc}") from exc
