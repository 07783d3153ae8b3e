"""The authn/authz/limits filters in the real gateway app, against an in-process upstream."""

from __future__ import annotations

import asyncio

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import GatewayConfig, Limits, RouteTable, create_app
from gateway.auth import AuthConfig, ClaimRules, keys_from_jwks, parse_policy
from gateway.limits import json_depth_exceeds, path_problem
from tests.gateway.auth_attacks import AUDIENCE, ISSUER, Issuer

ISSUER_KEYS = Issuer()
TEAM_POLICY = parse_policy(yaml.safe_load("""
rules:
  - roles: [admin]
    actions: ["*"]
  - roles: [team-a]
    actions: [invoke, info, "deployment:*"]
    resources: ["deployment:wine*"]
  - roles: [viewer]
    actions: [info, read]
"""))


async def upstream_app() -> web.Application:
    app = web.Application()

    async def any_path(request):
        return web.json_response({"path": request.path, "body": (await request.read()).decode()})

    app.router.add_route("*", "/{tail:.*}", any_path)
    return app


async def echo(request: web.Request) -> web.Response:
    return web.json_response({"got": len(await request.read())})


@pytest.fixture
async def gw():
    upstream = TestServer(await upstream_app(), host="127.0.0.1")
    await upstream.start_server()
    table = RouteTable()
    for dep in ("wine", "beer"):
        table.upsert(dep, dep, "1.0", role_name=f"role-{dep}")
        table.set_replicas(dep, [("127.0.0.1", upstream.port)])
    auth = AuthConfig(rules=ClaimRules(issuer=ISSUER, audiences=frozenset({AUDIENCE})),
                      static_keys=keys_from_jwks(ISSUER_KEYS.jwks()), policy=TEAM_POLICY)
    config = GatewayConfig(max_body_bytes=4096, auth=auth,
                           limits=Limits(body_timeout=0.5, max_json_depth=8))
    app = create_app(config, table, lambda _exchange: None)
    app.router.add_post("/api/v1/model/deployment", echo)
    app.router.add_post("/api/v1/feedback", echo)
    app.router.add_get("/debug/vars", echo)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()
    await upstream.close()


def bearer(*roles: str, **claims) -> dict[str, str]:
    return {"Authorization": "Bearer " + ISSUER_KEYS.token(ISSUER_KEYS.claims(roles, **claims))}


async def test_no_token_is_401_with_a_bare_challenge_and_a_json_reason(gw):
    resp = await gw.post("/model/wine/api/model/invoke", data=b"{}")
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="mlgate"'
    assert resp.headers["request-id"]
    assert await resp.json() == {
        "message": "this endpoint needs an Authorization: Bearer token", "reason": "token_missing"}


async def test_bad_token_is_401_with_rfc6750_error_fields(gw):
    headers = bearer("admin", exp=1)
    resp = await gw.get("/model/wine/api/model/info", headers=headers)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == (
        'Bearer realm="mlgate", error="invalid_token", error_description="token expired"')
    body = await resp.text()
    assert '"reason":"token_expired"' in body
    assert headers["Authorization"][7:] not in body


@pytest.mark.parametrize("header", ["Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer", "Token abc"])
async def test_other_schemes_and_empty_tokens_are_401(gw, header):
    resp = await gw.get("/model/wine/api/model/info", headers={"Authorization": header})
    assert resp.status == 401
    assert (await resp.json())["reason"] in ("token_missing", "token_malformed")


async def test_two_authorization_headers_are_a_bad_request(gw):
    good = bearer("admin")["Authorization"]
    resp = await gw.get("/model/wine/api/model/info",
                        headers=[("Authorization", good), ("Authorization", good)])
    assert resp.status == 400
    assert 'error="invalid_request"' in resp.headers["WWW-Authenticate"]


async def test_health_is_open_and_unknown_paths_authenticate_then_404(gw):
    assert (await gw.get("/health")).status == 200
    assert (await gw.get("/nowhere")).status == 401
    resp = await gw.get("/nowhere", headers=bearer("viewer"))
    assert resp.status == 404


async def test_a_routed_path_no_rule_classifies_is_admin_only(gw):
    resp = await gw.get("/debug/vars", headers=bearer("team-a"))
    assert resp.status == 403
    assert (await resp.json())["reason"] == "forbidden"
    assert (await gw.get("/debug/vars", headers=bearer("admin"))).status == 200


@pytest.mark.parametrize(("roles", "url", "status"), [
    (("team-a",), "/model/wine/api/model/invoke", 200),
    (("team-a",), "/model/beer/api/model/invoke", 403),
    (("viewer",), "/model/wine/api/model/invoke", 403),
    (("role-beer",), "/model/beer/api/model/invoke", 200),
    (("role-beer",), "/model/wine/api/model/invoke", 403),
    ((), "/model/wine/api/model/invoke", 403),
])
async def test_invoke_by_role(gw, roles, url, status):
    resp = await gw.post(url, data=b"{}", headers=bearer(*roles))
    assert resp.status == status
    if status == 403:
        body = await resp.json()
        assert "may not invoke deployment" in body["message"]
        assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]


async def test_info_for_viewers(gw):
    resp = await gw.get("/model/beer/api/model/info", headers=bearer("viewer"))
    assert resp.status == 200 and (await resp.json())["path"] == "/api/model/info"


@pytest.mark.parametrize(("body", "status"), [
    (b'{"id": "wine-v3", "spec": {}}', 200),
    (b'{"id": "beer-v1", "spec": {}}', 403),
    (b'{"spec": {}}', 403),
    (b"not json", 403),
])
async def test_management_writes_take_the_resource_from_the_body(gw, body, status):
    resp = await gw.post("/api/v1/model/deployment", data=body, headers=bearer("team-a"))
    assert resp.status == status


async def test_a_declared_oversized_body_is_413_before_anything_reads_it(gw):
    resp = await gw.post("/model/wine/api/model/invoke", data=b"x" * 5000, headers=bearer("admin"))
    assert resp.status == 413
    assert (await resp.json())["reason"] == "payload_too_large"


async def test_a_chunked_oversized_body_is_413(gw):
    async def chunks():
        for _ in range(10):
            yield b"x" * 1000

    resp = await gw.post("/model/wine/api/model/invoke", data=chunks(), headers=bearer("admin"))
    assert resp.status == 413


async def test_deep_json_is_refused_where_the_gateway_parses_json(gw):
    deep = b"[" * 9 + b"]" * 9
    resp = await gw.post("/api/v1/feedback", data=deep, headers=bearer("admin"))
    assert resp.status == 400
    assert "deeper than 8" in (await resp.json())["message"]
    resp = await gw.post("/api/v1/feedback", data=b"[" * 4000, headers=bearer("admin"))
    assert resp.status == 400  # beyond orjson's own limit, unbalanced: still a clear 400
    assert "deeper than 8" in (await resp.json())["message"]
    ok = await gw.post("/api/v1/feedback", data=b"[" * 8 + b"]" * 8, headers=bearer("admin"))
    assert ok.status == 200


@pytest.mark.parametrize("path", ["/model/wine/api/model/invoke", "/api/v1/model/deployment"])
async def test_a_body_that_never_arrives_is_408(gw, path):
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
    token = bearer("team-a")["Authorization"]
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: {token}\r\nContent-Length: 100\r\n\r\n{{".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    assert head.startswith(b"HTTP/1.1 408")
    writer.close()


PATHS = [
    ("/model/wine/api/model/invoke", None),
    ("/model/wine/api/model/invoke?next=/../beer", None),
    ("/feedback/model/", None),
    ("/model/wine/../beer/api/model/invoke", "'..'"),
    ("/model/wine/./api", "'..'"),
    ("/model/wine/%2e%2e/beer/api/model/invoke", "'..'"),
    ("/model/wine/%2E%2E/beer", "'..'"),
    ("/model/wine/.%2e/beer", "'..'"),
    ("/model/wine/%252e%252e/beer", "'..'"),
    ("/model/wine%2fbeer/api", "encoded '/'"),
    ("/model/wine/x%2F..%2Fbeer", "encoded '/'"),
    ("/model/wine/x%5cbeer", "encoded '/'"),
    ("/model/wine/x%252fbeer", "encoded '/'"),
    ("/model/wine\\..\\beer", "'\\'"),
    ("//model/wine", "empty segments"),
    ("/model//wine", "empty segments"),
    ("/model/wine/%00", "control characters"),
    ("/model/wine/%ff%fe", None),
    ("model/wine", "must start with '/'"),
]


@pytest.mark.parametrize(("raw", "fragment"), PATHS, ids=[p for p, _ in PATHS])
def test_path_problems(raw, fragment):
    problem = path_problem(raw)
    if fragment is None:
        assert problem is None
    else:
        assert problem is not None and fragment in problem


def test_json_depth():
    assert not json_depth_exceeds({"a": [1, {"b": [2]}]}, 4)
    assert json_depth_exceeds({"a": [1, {"b": [[2]]}]}, 4)
    assert not json_depth_exceeds(7, 2)
    nested: list = []
    for _ in range(5000):
        nested = [nested]
    assert json_depth_exceeds(nested, 64)
