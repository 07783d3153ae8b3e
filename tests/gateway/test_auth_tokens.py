"""Token verification without sockets: the attack table, key binding, the verified-token cache."""

from __future__ import annotations

import time

import pytest

from gateway.auth import (
    Authenticator,
    AuthError,
    ClaimRules,
    KeyConfigError,
    StaticKeys,
    key_from_jwk,
    key_from_pem,
    key_from_secret,
    keys_from_jwks,
)
from tests.gateway.auth_attacks import ATTACKS, AUDIENCE, ISSUER, Issuer, public_pem, sign

RULES = ClaimRules(issuer=ISSUER, audiences=frozenset({AUDIENCE}), leeway=30)
ROLES_CLAIM = ("realm_access.roles", "roles")


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


def authenticator(issuer: Issuer, **kw) -> Authenticator:
    keys = StaticKeys(keys_from_jwks(issuer.jwks()))
    return Authenticator(keys, RULES, ROLES_CLAIM, **kw)


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
async def test_attack_table(issuer, attack):
    auth = authenticator(issuer)
    token = attack.build(issuer)
    if attack.reason is None:
        principal = await auth.authenticate(token)
        assert principal.subject == "alice" and principal.roles == {"admin"}
        return
    with pytest.raises(AuthError) as err:
        await auth.authenticate(token)
    assert err.value.kind == attack.reason, err.value.message
    assert err.value.status == 401
    challenge = err.value.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="mlgate", error="invalid_token"')
    assert token not in err.value.message and token not in challenge


async def test_a_verified_token_is_served_from_the_cache_until_it_expires(issuer):
    now = [time.time()]
    auth = authenticator(issuer, clock=lambda: now[0])
    token = issuer.token(issuer.claims(exp=int(now[0]) + 60))
    first = await auth.authenticate(token)
    assert await auth.authenticate(token) is first
    assert auth.verified == 1
    now[0] += 60 + 31  # past exp + leeway
    with pytest.raises(AuthError) as err:
        await auth.authenticate(token)
    assert err.value.kind == "token_expired"
    assert len(auth.cache) == 0


async def test_the_cache_is_bounded_and_least_recently_used_goes_first(issuer):
    auth = authenticator(issuer, cache_size=2)
    tokens = [issuer.token(issuer.claims(sub=f"user-{n}")) for n in range(3)]
    for token in tokens[:2]:
        await auth.authenticate(token)
    await auth.authenticate(tokens[0])  # refresh 0: 1 is now the oldest
    await auth.authenticate(tokens[2])
    assert len(auth.cache) == 2
    assert auth.verified == 3
    await auth.authenticate(tokens[0])
    assert auth.verified == 3
    await auth.authenticate(tokens[1])
    assert auth.verified == 4


async def test_roles_come_from_the_first_claim_path_present(issuer):
    auth = Authenticator(StaticKeys(keys_from_jwks(issuer.jwks())), RULES,
                         ("https://mlgate.test/roles", "roles"))
    token = issuer.token(issuer.claims(**{"https://mlgate.test/roles": ["data_scientist"]}))
    assert (await auth.authenticate(token)).roles == {"data_scientist"}
    claims = issuer.claims()
    del claims["realm_access"]
    claims["roles"] = ["viewer"]
    flat = issuer.token(claims)
    assert (await auth.authenticate(flat)).roles == {"viewer"}


async def test_without_issuer_and_audience_rules_they_are_not_checked(issuer):
    auth = Authenticator(StaticKeys(keys_from_jwks(issuer.jwks())), ClaimRules(), ROLES_CLAIM)
    token = issuer.token(issuer.claims(iss="anyone", aud="anything"))
    assert (await auth.authenticate(token)).subject == "alice"


async def test_hs256_secret_accepts_its_own_tokens_and_refuses_rs256(issuer):
    secret = b"s" * 32
    auth = Authenticator(StaticKeys([key_from_secret(secret)]), RULES, ROLES_CLAIM)
    good = sign({"alg": "HS256", "typ": "JWT"}, issuer.claims(), secret)
    assert (await auth.authenticate(good)).roles == {"admin"}
    with pytest.raises(AuthError) as err:
        await auth.authenticate(issuer.token())
    assert err.value.kind == "alg_not_allowed"
    with pytest.raises(AuthError) as err:
        await auth.authenticate(sign({"alg": "HS256"}, issuer.claims(), b"t" * 32))
    assert err.value.kind == "bad_signature"


async def test_a_pem_public_key_only_verifies_rsa_algorithms(issuer):
    auth = Authenticator(StaticKeys([key_from_pem(public_pem(issuer.rsa))]), RULES, ROLES_CLAIM)
    assert (await auth.authenticate(issuer.token(kid="any-kid"))).subject == "alice"
    no_kid = sign({"alg": "RS256", "typ": "JWT"}, issuer.claims(), issuer.rsa)
    assert (await auth.authenticate(no_kid)).subject == "alice"
    confused = sign({"alg": "HS256", "typ": "JWT"}, issuer.claims(), public_pem(issuer.rsa))
    with pytest.raises(AuthError) as err:
        await auth.authenticate(confused)
    assert err.value.kind == "alg_not_allowed"


@pytest.mark.parametrize(("jwk", "fragment"), [
    ({"kty": "oct", "k": "c2VjcmV0", "kid": "s"}, "symmetric"),
    ({"kty": "RSA", "kid": "e", "use": "enc", "n": "AQAB", "e": "AQAB"}, "not signatures"),
    ({"kty": "RSA", "kid": "a", "alg": "HS256", "n": "AQAB", "e": "AQAB"}, "does not fit"),
    ({"kty": "EC", "kid": "c", "crv": "P-192", "x": "AA", "y": "AA"}, "unsupported curve"),
    ({"kty": "RSA", "kid": "m", "n": "!!", "e": "AQAB"}, "malformed"),
    ({"kty": "XYZ", "kid": "x"}, "unsupported kty"),
])
def test_unusable_jwks_keys_are_refused_with_a_reason(jwk, fragment):
    with pytest.raises(KeyConfigError) as err:
        key_from_jwk(jwk)
    assert fragment in str(err.value)


def test_a_jwks_keeps_its_usable_keys_and_skips_the_rest(issuer):
    doc = issuer.jwks()
    doc["keys"].append({"kty": "oct", "k": "c2VjcmV0", "kid": "s"})
    keys = keys_from_jwks(doc)
    assert [k.kid for k in keys] == ["rsa-1", "ec-1"]
    assert keys[1].algorithms == {"ES256"}
    assert "ES256" not in keys[0].algorithms and "HS256" not in keys[0].algorithms
    with pytest.raises(KeyConfigError):
        keys_from_jwks({"keys": "nope"})


def test_a_private_jwk_is_refused(issuer):
    from jwt.algorithms import RSAAlgorithm

    private = RSAAlgorithm.to_jwk(issuer.rsa, as_dict=True)
    with pytest.raises(KeyConfigError, match="private"):
        key_from_jwk(private)


def test_short_hs256_secrets_are_refused():
    with pytest.raises(KeyConfigError, match="at least 32 bytes"):
        key_from_secret("short")
