"""Key material and the auth config ``mlgate up`` builds from settings."""

from __future__ import annotations

import json
import stat
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest

from deploy.config import ConfigError, load_settings
from deploy.keys import (
    LOCAL_AUDIENCE,
    LOCAL_ISSUER,
    build_auth_config,
    ensure_local_keypair,
    mint_token,
    parse_duration,
    private_key_path,
    roles_claims,
    rsa_thumbprint,
)
from gateway.auth import Authenticator, AuthError, StaticKeys
from tests.gateway.auth_attacks import Issuer, public_pem


def settings(tmp_path, **auth):
    return load_settings(env={}, overrides={"data_dir": str(tmp_path), "auth": auth})


async def accept(config, token):
    auth = Authenticator(StaticKeys(config.static_keys), config.rules, config.roles_claim)
    return await auth.authenticate(token)


async def test_default_is_a_local_key_pair_that_mint_token_signs_for(tmp_path):
    s = settings(tmp_path)
    config = build_auth_config(s)
    assert config.rules.issuer == LOCAL_ISSUER and config.rules.audiences == {LOCAL_AUDIENCE}
    key_file = private_key_path(s.data_path)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    token = mint_token(s.auth, s.data_path, roles=["viewer", "x"], subject="bob", ttl=60)
    principal = await accept(config, token)
    assert principal.subject == "bob" and principal.roles == {"viewer", "x"}
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["kid"] == rsa_thumbprint(ensure_local_keypair(s.data_path).public_key())
    assert build_auth_config(s).static_keys[0].kid == header["kid"]  # the same key next start


def test_concurrent_creators_end_up_with_one_key(tmp_path):
    with ThreadPoolExecutor(4) as pool:
        keys = list(pool.map(lambda _: ensure_local_keypair(tmp_path), range(4)))
    kids = {rsa_thumbprint(k.public_key()) for k in keys}
    assert len(kids) == 1
    assert [p.name for p in (tmp_path / "keys").iterdir() if p.name.startswith(".")] == []


async def test_hs256_secret_config_and_tokens(tmp_path):
    s = settings(tmp_path, hs256_secret="k" * 40, issuer="me", audience="gw")
    config = build_auth_config(s)
    token = mint_token(s.auth, s.data_path, roles=["admin"], subject="ci", ttl=60)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert (await accept(config, token)).roles == {"admin"}
    assert not (tmp_path / "keys").exists()
    assert "kkkk" not in repr(s)


async def test_jwks_file_and_pem_file(tmp_path):
    issuer = Issuer()
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(issuer.jwks()))
    config = build_auth_config(settings(tmp_path, jwks_file=str(jwks_file),
                                        issuer=issuer.issuer, audience=issuer.audience))
    assert (await accept(config, issuer.token(alg="ES256"))).subject == "alice"
    pem_file = tmp_path / "key.pem"
    pem_file.write_bytes(public_pem(issuer.rsa))
    config = build_auth_config(settings(tmp_path, public_key_file=str(pem_file),
                                        issuer=issuer.issuer, audience=issuer.audience))
    assert (await accept(config, issuer.token())).subject == "alice"
    with pytest.raises(AuthError):
        await accept(config, issuer.token(alg="ES256"))


def test_jwks_url_config(tmp_path):
    config = build_auth_config(settings(tmp_path, jwks_url="https://kc.example/certs",
                                        jwks_refresh_min_interval=5))
    assert config.jwks.url == "https://kc.example/certs" and config.jwks.min_refresh_interval == 5
    assert config.static_keys == ()


def test_a_policy_file_replaces_the_defaults(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - roles: [ops]\n    actions: ['*']\n")
    config = build_auth_config(settings(tmp_path, policy_file=str(policy)))
    assert [sorted(r.roles) for r in config.policy.rules] == [["ops"]]


@pytest.mark.parametrize(("auth", "fragment"), [
    ({"hs256_secret": "short"}, "at least 32 bytes"),
    ({"jwks_file": "/nonexistent/jwks.json"}, "No such file"),
    ({"public_key_file": __file__}, "not a PEM public key"),
    ({"jwks_url": "ftp://x/certs"}, "http(s) URL"),
    ({"policy_file": "/nonexistent/policy.yaml"}, "auth.policy_file"),
])
def test_bad_auth_configs_name_the_problem(tmp_path, auth, fragment):
    with pytest.raises(ConfigError) as err:
        build_auth_config(settings(tmp_path, **auth))
    assert fragment in str(err.value)


@pytest.mark.parametrize(("auth", "fragment"), [
    ({"jwks_url": "https://a", "hs256_secret": "x" * 32}, "at most one key source"),
    ({"leeway": 9999}, "auth.leeway"),
    ({"roles_claim": []}, "roles_claim"),
])
def test_auth_settings_are_validated(tmp_path, auth, fragment):
    with pytest.raises(ConfigError) as err:
        settings(tmp_path, **auth)
    assert fragment in str(err.value)


def test_disabled_auth_builds_no_config(tmp_path):
    assert build_auth_config(settings(tmp_path, enabled=False)) is None
    env = load_settings(env={"MLGATE_AUTH_ENABLED": "false"})
    assert env.auth.enabled is False


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("30s", 30), ("15m", 900),
                                               ("1h", 3600), ("7d", 604800), ("0.5h", 1800)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("path", "claims"), [
    ("realm_access.roles", {"realm_access": {"roles": ["a"]}}),
    ("roles", {"roles": ["a"]}),
    ("https://mlgate.test/roles", {"https://mlgate.test/roles": ["a"]}),
])
def test_roles_claims(path, claims):
    assert roles_claims(["a"], path) == claims
