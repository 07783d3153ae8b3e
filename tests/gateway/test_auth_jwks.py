"""The JWKS client against a real JWKS server on 127.0.0.1: rotation, rate limit, outages."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.auth import Authenticator, AuthError, ClaimRules, JwksClient, JwksSettings
from gateway.errors import ServiceUnavailable
from tests.gateway.auth_attacks import AUDIENCE, ISSUER, Issuer

RULES = ClaimRules(issuer=ISSUER, audiences=frozenset({AUDIENCE}))
DOC = web.AppKey("doc", dict)
HITS = web.AppKey("hits", list)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def jwks_server():
    app = web.Application()
    app[DOC] = {"status": 200, "body": Issuer().jwks()}
    app[HITS] = []

    async def jwks(_request):
        app[HITS].append(1)
        doc = app[DOC]
        if doc["status"] != 200:
            return web.Response(status=doc["status"], text="down")
        return web.json_response(doc["body"])

    app.router.add_get("/certs", jwks)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


async def client_for(server, clock, **kw) -> JwksClient:
    settings = JwksSettings(str(server.make_url("/certs")), **kw)
    client = JwksClient(settings, clock=clock)
    await client.start()
    return client


async def test_rotation_unknown_kid_refreshes_once_and_is_rate_limited(jwks_server):
    clock = Clock()
    old, new = Issuer(rsa_kid="2024"), Issuer(rsa_kid="2025")
    jwks_server.app[DOC]["body"] = old.jwks()
    client = await client_for(jwks_server, clock, min_refresh_interval=30, retired_key_grace=0)
    auth = Authenticator(client, RULES, ("realm_access.roles",))
    try:
        assert (await auth.authenticate(old.token())).subject == "alice"
        assert len(jwks_server.app[HITS]) == 1

        jwks_server.app[DOC]["body"] = new.jwks()  # the issuer rotates
        clock.now += 31
        assert (await auth.authenticate(new.token())).subject == "alice"
        assert len(jwks_server.app[HITS]) == 2

        for kid in ("made-up-1", "made-up-2", "made-up-3"):  # an attacker's kids
            with pytest.raises(AuthError) as err:
                await auth.authenticate(new.token(kid=kid))
            assert err.value.kind == "unknown_kid"
        assert len(jwks_server.app[HITS]) == 2, "refresh within min_refresh_interval"

        clock.now += 31
        with pytest.raises(AuthError):
            await auth.authenticate(new.token(kid="made-up-4"))
        assert len(jwks_server.app[HITS]) == 3
        with pytest.raises(AuthError) as err:
            await auth.authenticate(old.token(old.claims(sub="bob")))
        assert err.value.kind in ("unknown_kid", "bad_signature")
    finally:
        await client.close()


async def test_the_key_set_changing_drops_cached_tokens(jwks_server):
    clock = Clock()
    first = Issuer(rsa_kid="k1")
    jwks_server.app[DOC]["body"] = first.jwks()
    client = await client_for(jwks_server, clock, min_refresh_interval=0, retired_key_grace=0)
    auth = Authenticator(client, RULES, ("realm_access.roles",))
    try:
        token = first.token()
        await auth.authenticate(token)
        assert len(auth.cache) == 1
        jwks_server.app[DOC]["body"] = Issuer(rsa_kid="k2").jwks()  # k1 dropped at once
        await client.refresh()
        with pytest.raises(AuthError) as err:
            await auth.authenticate(token)
        assert err.value.kind == "unknown_kid"
    finally:
        await client.close()


async def test_a_rotated_out_key_verifies_its_tokens_for_the_grace_then_not(jwks_server):
    """Rotation without restart: the new key is fetched for its first token; the old one,
    no longer published, still verifies tokens signed before (their own exp applies)
    until ``retired_key_grace`` is over."""
    clock = Clock()
    old, new = Issuer(rsa_kid="2024"), Issuer(rsa_kid="2025")
    jwks_server.app[DOC]["body"] = old.jwks()
    client = await client_for(jwks_server, clock, min_refresh_interval=0,
                              retired_key_grace=600)
    auth = Authenticator(client, RULES, ("realm_access.roles",))
    try:
        before = old.token(old.claims(sub="bob"))
        jwks_server.app[DOC]["body"] = new.jwks()  # the issuer publishes only the new key
        assert (await auth.authenticate(new.token())).subject == "alice"
        assert "2024" not in {k.kid for k in client.keys}
        assert [k.kid for k in client.retired] == ["2024"]
        assert (await auth.authenticate(before)).subject == "bob"
        clock.now += 601
        await client.refresh()
        assert client.retired == ()
        with pytest.raises(AuthError) as err:
            await auth.authenticate(old.token(old.claims(sub="carol")))
        assert err.value.kind == "unknown_kid"
        jwks_server.app[DOC]["body"] = {"keys": old.jwks()["keys"][:1] + new.jwks()["keys"]}
        await client.refresh()  # published again: a live key, not a retired one
        assert {"2024", "2025"} <= {k.kid for k in client.keys} and client.retired == ()
    finally:
        await client.close()


async def test_issuer_down_at_start_answers_503_then_recovers(jwks_server):
    clock = Clock()
    issuer = Issuer()
    jwks_server.app[DOC].update(status=500, body=issuer.jwks())
    client = await client_for(jwks_server, clock, min_refresh_interval=10)
    auth = Authenticator(client, RULES, ("realm_access.roles",))
    try:
        with pytest.raises(ServiceUnavailable):
            await auth.authenticate(issuer.token())
        jwks_server.app[DOC]["status"] = 200
        clock.now += 11
        assert (await auth.authenticate(issuer.token())).subject == "alice"
    finally:
        await client.close()


async def test_a_failed_refresh_keeps_the_known_keys(jwks_server):
    clock = Clock()
    issuer = Issuer()
    jwks_server.app[DOC]["body"] = issuer.jwks()
    client = await client_for(jwks_server, clock, min_refresh_interval=0, ttl=60)
    auth = Authenticator(client, RULES, ("realm_access.roles",))
    try:
        jwks_server.app[DOC]["status"] = 503
        assert await client.refresh() is False
        jwks_server.app[DOC].update(status=200, body={"keys": "garbage"})
        assert await client.refresh() is False
        assert [k.kid for k in client.keys] == ["rsa-1", "ec-1"]
        assert (await auth.authenticate(issuer.token())).subject == "alice"
    finally:
        await client.close()


async def test_stale_keys_are_refreshed_in_the_background(jwks_server):
    clock = Clock()
    issuer = Issuer()
    jwks_server.app[DOC]["body"] = issuer.jwks()
    client = await client_for(jwks_server, clock, min_refresh_interval=0, ttl=60)
    try:
        clock.now += 61
        assert await client.keys_for("rsa-1")  # served from the old set at once
        await client._background
        assert len(jwks_server.app[HITS]) == 2
    finally:
        await client.close()


def test_jwks_settings_are_validated():
    with pytest.raises(ValueError, match="http"):
        JwksSettings("file:///etc/passwd")
