"""Credentials under abuse in the gateway app: revoked tokens (by jti, by subject before a
time) and addresses that keep sending invalid tokens; and the pure revocation rule."""

from __future__ import annotations

import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway import REVOCATIONS, GatewayConfig, InvalidTokenLimit, RouteTable, create_app
from gateway.auth import AuthConfig, ClaimRules, RevocationList, keys_from_jwks, revoked_reason
from tests.gateway.auth_attacks import AUDIENCE, ISSUER, Issuer
from tests.gateway.traffic_upstreams import upstreams

ISSUER_KEYS = Issuer()
INVOKE = "/model/wine/api/model/invoke"


def test_the_revocation_rule():
    revoked = RevocationList(frozenset({"t-1"}), {"alice": 1000.0})
    assert revoked_reason({"jti": "t-1", "sub": "bob"}, revoked) == "jti"
    assert revoked_reason({"jti": "t-2", "sub": "alice", "iat": 999}, revoked) == "subject"
    assert revoked_reason({"sub": "alice", "iat": 1000}, revoked) is None  # issued at the cut
    assert revoked_reason({"sub": "alice"}, revoked) == "subject"  # no iat: cannot tell
    assert revoked_reason({"sub": "alice", "iat": True}, revoked) == "subject"
    assert revoked_reason({"jti": "t-3", "sub": "bob", "iat": 1}, revoked) is None
    assert not RevocationList() and revoked


@pytest.fixture
async def gw():
    table = RouteTable()
    ups = await upstreams(table, "wine")
    auth = AuthConfig(rules=ClaimRules(issuer=ISSUER, audiences=frozenset({AUDIENCE})),
                      static_keys=keys_from_jwks(ISSUER_KEYS.jwks()))
    config = GatewayConfig(auth=auth, invalid_tokens=InvalidTokenLimit(rate=0.001, burst=3))
    app = create_app(config, table, lambda _exchange: None)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield app, client
    await client.close()
    await ups["wine"].close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_revoked_jti_is_refused_even_when_the_token_was_cached(gw):
    app, client = gw
    token = ISSUER_KEYS.token(ISSUER_KEYS.claims(jti="leaked-1"))
    other = ISSUER_KEYS.token(ISSUER_KEYS.claims(jti="fine-1"))
    assert (await client.post(INVOKE, json={}, headers=bearer(token))).status == 200
    app[REVOCATIONS].replace(RevocationList(frozenset({"leaked-1"})))
    refused = await client.post(INVOKE, json={}, headers=bearer(token))
    assert refused.status == 401
    assert (await refused.json())["reason"] == "token_revoked"
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert (await client.post(INVOKE, json={}, headers=bearer(other))).status == 200
    app[REVOCATIONS].replace(RevocationList())  # taken back
    assert (await client.post(INVOKE, json={}, headers=bearer(token))).status == 200
    text = await (await client.get("/metrics")).text()
    assert 'mlgate_requests_revoked_total{deployment="wine",reason="jti"} 1.0' in text


async def test_a_subjects_tokens_issued_before_the_cut_are_refused_later_ones_not(gw):
    app, client = gw
    now = int(time.time())
    old = ISSUER_KEYS.token(ISSUER_KEYS.claims(sub="mallory", iat=now - 60))
    new = ISSUER_KEYS.token(ISSUER_KEYS.claims(sub="mallory", iat=now + 1))
    app[REVOCATIONS].replace(RevocationList(subjects={"mallory": now}))
    assert (await client.post(INVOKE, json={}, headers=bearer(old))).status == 401
    assert (await client.post(INVOKE, json={}, headers=bearer(new))).status == 200


async def test_an_address_sending_invalid_tokens_gets_429_before_any_check(gw):
    _app, client = gw
    good = ISSUER_KEYS.token()
    assert (await client.post(INVOKE, json={}, headers=bearer(good))).status == 200  # cached
    bad = [await client.post(INVOKE, json={}, headers=bearer(f"{good[:-4]}AAAA{i}"))
           for i in range(5)]
    assert [r.status for r in bad] == [401, 401, 401, 429, 429]
    limited = bad[-1]
    assert int(limited.headers["Retry-After"]) >= 1
    assert (await limited.json())["reason"] == "rate_limited"
    # a token verified before still works from that address; a new one waits its turn
    assert (await client.post(INVOKE, json={}, headers=bearer(good))).status == 200
    fresh = ISSUER_KEYS.token(ISSUER_KEYS.claims(sub="carol"))
    assert (await client.post(INVOKE, json={}, headers=bearer(fresh))).status == 429
    # no token at all is no guess: 401 as ever
    assert (await client.post(INVOKE, json={})).status == 401
    text = await (await client.get("/metrics")).text()
    assert 'mlgate_requests_rate_limited_total{deployment="wine",reason="invalid_tokens"}' in text
