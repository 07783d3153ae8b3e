"""``/custom/...`` through the real gateway app (authn, authz, proxy) to in-process upstreams."""

from __future__ import annotations

import time
from collections import Counter

import pytest
import yaml
from aiohttp.test_utils import TestClient, TestServer

from gateway import GatewayConfig, OutlierPolicy, RouteTable, StickyKey, create_app
from gateway.auth import AuthConfig, ClaimRules, keys_from_jwks, parse_policy
from gateway.traffic import TrafficRoute, WeightedTarget
from tests.gateway.auth_attacks import AUDIENCE, ISSUER, Issuer
from tests.gateway.traffic_upstreams import free_port, upstreams

ISSUER_KEYS = Issuer()
POLICY = parse_policy(yaml.safe_load("""
rules:
  - roles: [admin]
    actions: ["*"]
  - roles: [data_scientist]
    actions: [invoke, info]
  - roles: [team-a]
    actions: [invoke]
    resources: ["route:wine-ab"]
"""))
INVOKE = "/custom/wine/api/model/invoke"


def bearer(*roles: str, **claims) -> dict[str, str]:
    return {"Authorization": "Bearer " + ISSUER_KEYS.token(ISSUER_KEYS.claims(roles, **claims))}


# Made at import, used until the end of a long suite: valid for a day, not the default 10 min.
DAY = 24 * 3600
ADMIN = bearer("admin", exp=int(time.time()) + DAY)
SCIENTIST = bearer("data_scientist", exp=int(time.time()) + DAY)


def wine_route(a: int = 50, b: int = 50, **kw) -> TrafficRoute:
    return TrafficRoute("wine-ab", "/custom/wine",
                        (WeightedTarget("a", a), WeightedTarget("b", b)), **kw)


@pytest.fixture
async def gateway():
    """``start(auth=True, **config)`` -> (client, table, upstreams a and b, logged exchanges)."""
    cleanup = []

    async def start(auth: bool = True, **config):
        table = RouteTable()
        ups = await upstreams(table, "a", "b")
        table.set_routes([wine_route()])
        logged = []
        auth_config = AuthConfig(
            rules=ClaimRules(issuer=ISSUER, audiences=frozenset({AUDIENCE})),
            static_keys=keys_from_jwks(ISSUER_KEYS.jwks()), policy=POLICY) if auth else None
        app = create_app(GatewayConfig(auth=auth_config, **config), table, logged.append)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        cleanup.append((client, ups))
        return client, table, ups, logged

    yield start
    for client, ups in cleanup:
        await client.close()
        for up in ups.values():
            await up.close()


async def served(client, n: int, headers=None, path: str = INVOKE) -> list[str]:
    targets = []
    for _ in range(n):
        resp = await client.post(path, data=b'{"data": [[1]]}', headers=headers or ADMIN)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert resp.headers["x-mlgate-target"] == body["served_by"]
        targets.append(body["served_by"])
    return targets


async def test_split_forwards_the_rest_of_the_path_and_names_route_and_target(gateway):
    client, _table, ups, logged = await gateway()
    resp = await client.post(INVOKE + "?v=1", data=b'{"data": [[1]]}',
                             headers={**ADMIN, "Request-ID": "split-1"})
    assert resp.status == 200
    assert resp.headers["x-mlgate-route"] == "wine-ab"
    target = resp.headers["x-mlgate-target"]
    assert resp.headers["model-name"] == f"model-{target}"
    path, headers, body = ups[target].seen[0]
    assert (path, body, headers["request-id"]) == ("/api/model/invoke?v=1", b'{"data": [[1]]}',
                                                   "split-1")
    [ex] = logged
    assert ex.model_name == f"model-{target}" and ex.uri == INVOKE + "?v=1"
    assert ex.extra == {"route": "wine-ab", "target": target, "assignment": "random"}
    assert set(await served(client, 40)) == {"a", "b"}


async def test_a_gzip_request_through_a_route_is_forwarded_decoded_and_marked(gateway):
    import gzip

    client, _table, ups, logged = await gateway()
    resp = await client.post(INVOKE, data=gzip.compress(b'{"data": [[1]]}'),
                             headers={**ADMIN, "Content-Encoding": "gzip"})
    assert resp.status == 200
    target = resp.headers["x-mlgate-target"]
    _path, headers, body = ups[target].seen[0]
    assert body == b'{"data": [[1]]}'
    assert "content-encoding" not in {k.lower() for k in headers}
    [ex] = logged
    assert ex.extra == {"route": "wine-ab", "target": target, "assignment": "random",
                        "request_content_decoded": "gzip"}


async def test_weights_change_for_the_next_request(gateway):
    client, table, *_ = await gateway()
    table.set_routes([wine_route(100, 0)])
    assert set(await served(client, 30)) == {"a"}
    table.set_routes([wine_route(0, 100)])
    assert set(await served(client, 30)) == {"b"}


async def test_sticky_header_keeps_each_user_on_one_target(gateway):
    client, table, _ups, logged = await gateway()
    table.set_routes([wine_route(sticky=StickyKey("header", "x-user"))])
    per_user = {}
    for i in range(30):
        got = await served(client, 3, {**ADMIN, "X-User": f"user-{i}"})
        assert len(set(got)) == 1
        per_user[i] = got[0]
    assert set(per_user.values()) == {"a", "b"}
    assert {ex.extra["assignment"] for ex in logged} == {"sticky"}


async def test_sticky_cookie_and_jwt_sub(gateway):
    client, table, *_ = await gateway()
    table.set_routes([wine_route(sticky=StickyKey("cookie", "uid"))])
    for i in range(10):
        assert len(set(await served(client, 3, {**ADMIN, "Cookie": f"uid=u{i}; x=1"}))) == 1
    table.set_routes([wine_route(sticky=StickyKey("claim", "sub"))])
    by_sub = {}
    for i in range(20):
        got = await served(client, 3, bearer("admin", sub=f"subject-{i}"))
        assert len(set(got)) == 1
        by_sub[i] = got[0]
    assert set(by_sub.values()) == {"a", "b"}


async def test_override_is_for_configured_roles_only(gateway):
    client, table, ups, _logged = await gateway()
    table.set_routes([wine_route(100, 0)])
    resp = await client.post(INVOKE, data=b"{}",
                             headers={**ADMIN, "x-mlgate-override-target": "b"})
    assert resp.status == 200 and (await resp.json())["served_by"] == "b"
    assert "x-mlgate-override-target" not in ups["b"].seen[0][1]
    denied = await client.post(INVOKE, data=b"{}",
                               headers={**SCIENTIST, "x-mlgate-override-target": "b"})
    assert denied.status == 403
    assert (await denied.json())["reason"] == "override_forbidden"
    unknown = await client.post(INVOKE, data=b"{}",
                                headers={**ADMIN, "x-mlgate-override-target": "c"})
    assert unknown.status == 400 and "not a target" in (await unknown.json())["message"]
    table.set_routes([wine_route(100, 0, override_roles=frozenset({"data_scientist"}))])
    allowed = await client.post(INVOKE, data=b"{}",
                                headers={**SCIENTIST, "x-mlgate-override-target": "b"})
    assert (await allowed.json())["served_by"] == "b"


async def test_override_without_auth_is_allowed(gateway):
    client, table, *_ = await gateway(auth=False)
    table.set_routes([wine_route(100, 0)])
    resp = await client.post(INVOKE, data=b"{}", headers={"x-mlgate-override-target": "b"})
    assert (await resp.json())["served_by"] == "b"


async def test_policy_rules_name_the_route_id(gateway):
    client, table, *_ = await gateway()
    other = TrafficRoute("other", "/custom/other", (WeightedTarget("a", 100),))
    table.set_routes([wine_route(), other])
    team = bearer("team-a")
    assert (await client.post(INVOKE, data=b"{}", headers=team)).status == 200
    denied = await client.post("/custom/other/api/model/invoke", data=b"{}", headers=team)
    assert denied.status == 403 and "route 'other'" in (await denied.json())["message"]


async def test_unknown_route_is_404(gateway):
    client, *_ = await gateway()
    for path in ("/custom/wine2/api/model/invoke", "/custom", "/custom/nothing"):
        resp = await client.post(path, data=b"{}", headers=ADMIN)
        assert resp.status == 404, path
        assert (await resp.json())["reason"] == "not_found"


async def test_connect_failure_moves_to_another_target_but_not_an_override(gateway):
    client, table, _ups, logged = await gateway()
    table.set_replicas("b", [("127.0.0.1", free_port())])
    assert set(await served(client, 30)) == {"a"}
    assert Counter(ex.extra["assignment"] for ex in logged)["failover"] > 0
    assert {ex.extra["target"] for ex in logged} == {"a"}
    resp = await client.post(INVOKE, data=b"{}",
                             headers={**ADMIN, "x-mlgate-override-target": "b"})
    assert resp.status == 502


async def test_target_not_ready_gets_no_new_traffic_while_another_is(gateway):
    client, table, *_ = await gateway()
    table.get("b").ready = False
    assert set(await served(client, 30)) == {"a"}
    table.get("a").ready = False  # none ready: the weights decide
    assert set(await served(client, 30)) == {"a", "b"}


async def test_failing_replica_is_ejected_and_its_target_avoided(gateway):
    client, _table, ups, _logged = await gateway(
        outlier=OutlierPolicy(consecutive_failures=3, base_ejection=60, max_ejection=60))
    ups["b"].status = 503
    statuses = Counter()
    for _ in range(60):
        resp = await client.post(INVOKE, data=b"{}", headers=ADMIN)
        statuses[(resp.status, resp.headers["x-mlgate-target"])] += 1
    # Each failure reached the model, so it is answered as is; after three, b is ejected.
    assert statuses[(503, "b")] == 3
    assert statuses[(200, "a")] == 57
