"""Rate limits: the rules (pure) and the gateway answering 429 with the RateLimit fields."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway import GatewayConfig, RouteTable, TrafficRoute, WeightedTarget, create_app
from gateway.buckets import LocalBuckets
from gateway.ratelimit import (
    RateLimited,
    RateLimiter,
    RateRule,
    caller_key,
    headers_for,
    parse_rate,
    parse_rules,
)
from tests.gateway.traffic_upstreams import upstreams


@pytest.mark.parametrize(("text", "rate"), [
    ("50", 50.0), (50, 50.0), ("50/s", 50.0), ("600/m", 10.0), ("3600/h", 1.0),
    ("5/10s", 0.5), (" 2 / s ", 2.0), (0.5, 0.5)])
def test_rates(text, rate):
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["", "fast", "0", "-1", "5/x", "1e400", True])
def test_not_rates(text):
    with pytest.raises(ValueError):
        parse_rate(text)


def test_rules_from_configuration():
    rules = parse_rules([
        {"name": "per-user", "deployments": ["wine-*"], "rate": "50/s", "burst": 100},
        {"routes": "wine", "key": "claim:tenant.id", "rate": 5},
    ])
    assert rules[0] == RateRule("per-user", 50.0, 100, "sub", ("wine-*",), ())
    assert rules[1] == RateRule("rule-2", 5.0, 5, "claim:tenant.id", (), ("wine",))
    assert rules[0].covers("deployment", "wine-v1") and not rules[0].covers("route", "wine-v1")
    assert rules[0].policy == '100;w=2;name="per-user"'


@pytest.mark.parametrize(("raw", "message"), [
    ([{"rate": 5}], "name the deployments and/or routes"),
    ([{"deployments": ["*"]}], "rate is required"),
    ([{"deployments": ["*"], "rate": 5, "key": "ip"}], "key must be"),
    ([{"deployments": ["*"], "rate": 5, "burst": 0}], "burst >= 1"),
    ([{"deployments": ["*"], "rate": 5, "burst": "many"}], "whole number"),
    ([{"deployments": ["*"], "rate": 5, "per": "s"}], "unknown key"),
    ([{"name": "a", "deployments": ["*"], "rate": 5}, {"name": "a", "routes": ["*"],
                                                      "rate": 1}], "another rule"),
    (["x"], "must be a mapping"),
    ([{"name": "no spaces", "deployments": ["*"], "rate": 5}], "A-Za-z0-9"),
])
def test_bad_rules_name_the_problem(raw, message):
    with pytest.raises(ValueError, match=message):
        parse_rules(raw)


def test_whose_bucket():
    sub = RateRule("r", 1, 1, "sub", ("*",))
    claim = RateRule("r", 1, 1, "claim:org.id", ("*",))
    assert caller_key(sub, {"sub": "alice"}, "10.0.0.1") == "sub:alice"
    assert caller_key(sub, None, "10.0.0.1") == "addr:10.0.0.1"  # no token: by address
    assert caller_key(claim, {"org": {"id": 7}}, "a") == "claim:7"
    assert caller_key(claim, {"org": {}}, "a") == "addr:a"
    assert caller_key(RateRule("r", 1, 1, "address", ("*",)), {"sub": "x"}, "a") == "addr:a"
    assert caller_key(RateRule("r", 1, 1, "all", ("*",)), {"sub": "x"}, "a") == "*"


def test_every_matching_rule_takes_and_the_tightest_is_reported():
    limiter = RateLimiter(parse_rules([
        {"name": "wide", "deployments": ["*"], "key": "all", "rate": 1000, "burst": 1000},
        {"name": "narrow", "deployments": ["wine"], "rate": 1, "burst": 2}]), LocalBuckets())
    verdicts = limiter.check("deployment", "wine", {"sub": "a"}, "x")
    headers = headers_for(verdicts)
    assert headers["RateLimit-Limit"] == "2" and headers["RateLimit-Remaining"] == "1"
    assert headers["RateLimit-Policy"] == '1000;w=1;name="wide", 2;w=2;name="narrow"'
    limiter.check("deployment", "wine", {"sub": "a"}, "x")
    with pytest.raises(RateLimited) as refused:
        limiter.check("deployment", "wine", {"sub": "a"}, "x")
    assert refused.value.reason == "narrow" and refused.value.headers["Retry-After"] == "1"
    assert limiter.check("deployment", "wine", {"sub": "b"}, "x")  # another caller
    assert limiter.check("deployment", "other", {"sub": "a"}, "x")[0].rule.name == "wide"


@pytest.fixture
async def stack():
    table = RouteTable()
    ups = await upstreams(table, "wine-v1", "wine-v2")
    table.get("wine-v2").rate_limits = (RateRule("deployment", 0.001, 1, "all",
                                                 ("wine-v2",)),)
    table.set_routes([TrafficRoute("wine", "/custom/wine", (WeightedTarget("wine-v1", 100),))])
    rules = parse_rules([{"name": "per-caller", "deployments": ["wine-v1"], "key": "address",
                          "rate": 0.001, "burst": 3},
                         {"name": "route", "routes": ["wine"], "key": "all", "rate": 0.001,
                          "burst": 2}])
    client = TestClient(TestServer(create_app(GatewayConfig(rate_limits=rules), table,
                                              lambda e: None), host="127.0.0.1"))
    await client.start_server()
    yield client, ups["wine-v1"]
    await client.close()
    for upstream in ups.values():
        await upstream.close()


async def test_429_with_retry_after_and_the_ratelimit_fields(stack):
    client, upstream = stack
    answers = [await client.post("/model/wine-v1/api/model/invoke", json={}) for _ in range(4)]
    assert [a.status for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert all(a.headers["RateLimit-Limit"] == "3" for a in answers)
    assert all(a.headers["RateLimit-Policy"] == '3;w=3000;name="per-caller"' for a in answers)
    refused = answers[-1]
    assert int(refused.headers["Retry-After"]) >= 999  # one token back in 1000 s
    assert int(refused.headers["RateLimit-Reset"]) >= 2999
    body = await refused.json()
    assert body["reason"] == "rate_limited" and "per-caller" in body["message"]
    assert len(upstream.seen) == 3  # the refused one never reached the model
    text = await (await client.get("/metrics")).text()
    assert ('mlgate_requests_rate_limited_total{deployment="wine-v1",reason="per-caller"} 1.0'
            in text)


async def test_a_deployments_own_limit_and_a_routes(stack):
    client, _upstream = stack
    first = await client.post("/model/wine-v2/api/model/invoke", json={})
    assert first.status == 200 and first.headers["RateLimit-Policy"].endswith(
        'name="deployment"')
    assert (await client.post("/model/wine-v2/api/model/invoke", json={})).status == 429
    routed = [await client.post("/custom/wine/api/model/invoke", json={}) for _ in range(3)]
    assert [r.status for r in routed] == [200, 200, 429]
    assert (await routed[-1].json())["message"].startswith("rate limit 'route' of route")
    # both the route's bucket and its target's were taken from
    assert 'name="route"' in routed[0].headers["RateLimit-Policy"]
    assert 'name="per-caller"' in routed[0].headers["RateLimit-Policy"]


async def test_paths_no_rule_covers_carry_no_fields(stack):
    client, _upstream = stack
    resp = await client.get("/health")
    assert resp.status == 200 and "RateLimit-Limit" not in resp.headers
