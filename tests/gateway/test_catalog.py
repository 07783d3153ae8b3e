"""The service catalog: listing and rewriting as pure functions, then the endpoints in the
real gateway app against in-process model servers (documents read through the gateway)."""

from __future__ import annotations

import copy

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import GatewayConfig, RouteTable, create_app
from gateway.auth import AuthConfig, ClaimRules, keys_from_jwks, parse_policy
from gateway.catalog import BEARER_SCHEME, Fetched, catalog_document, has_examples, listing
from gateway.routing import Deployment
from tests.gateway.auth_attacks import AUDIENCE, ISSUER, Issuer


def model_document(name: str, version: str, examples: bool) -> dict:
    return {
        "openapi": "3.0.3", "info": {"title": name, "version": version},
        "paths": {"/api/model/invoke": {"post": {"operationId": "invoke", "responses": {
            "200": {"description": "ok"}}}}},
        "components": {"securitySchemes": {"other": {"type": "apiKey", "in": "header",
                                                     "name": "X-Key"}}},
        "x-mlgate": {"model_name": name, "model_version": version, "has_examples": examples},
    }


# -- pure ---------------------------------------------------------------------------------------

def test_the_document_is_served_at_the_gateway_with_a_bearer_scheme():
    original = model_document("wine", "1.0", True)
    kept = copy.deepcopy(original)
    doc = catalog_document(original, "wine-v1")
    assert original == kept  # the input is not changed
    assert doc["servers"] == [{"url": "/model/wine-v1",
                               "description": "model deployment wine-v1 through mlgate"}]
    assert doc["components"]["securitySchemes"] == {
        "other": kept["components"]["securitySchemes"]["other"],
        BEARER_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                        "description": "An mlgate token (`mlgate token`)"}}
    assert doc["security"] == [{BEARER_SCHEME: []}]
    assert doc["info"] == {"title": "wine-v1: wine", "version": "1.0"}
    assert doc["x-mlgate"]["deployment"] == "wine-v1"
    assert doc["paths"] == kept["paths"]


def test_a_document_without_components_gets_them():
    doc = catalog_document({"openapi": "3.0.3", "paths": {}}, "x")
    assert doc["components"]["securitySchemes"][BEARER_SCHEME]["scheme"] == "bearer"
    assert doc["info"]["title"] == "x: x"


DEP = Deployment("wine-v1", "wine", "1.0")


@pytest.mark.parametrize(("fetched", "listed", "reason"), [
    (Fetched(200, model_document("wine", "1.0", True)), True, ""),
    (Fetched(200, model_document("wine", "1.0", False)), False,
     "the model provides no input/output examples"),
    (Fetched(200, {"x-mlgate": {"has_examples": True}}), False, "not an OpenAPI document"),
    (Fetched(200, None), False, "not an OpenAPI document"),
    (Fetched(404, message="no route for /api/model/info"), False,
     "not available (404: no route for /api/model/info)"),
    (Fetched(403, message="role(s) x may not info deployment 'wine-v1'"), False, "(403: "),
    (None, False, "no ready replica"),
], ids=["examples", "no examples", "not openapi", "not an object", "404", "403", "no replica"])
def test_listing_says_why_a_deployment_is_not_in_the_catalog(fetched, listed, reason):
    entry = listing(DEP, fetched)
    assert entry["listed"] is listed
    assert entry["document"] == "/service-catalog/api/models/wine-v1"
    assert (entry["model_name"], entry["model_version"]) == ("wine", "1.0")
    assert reason in entry["reason"]
    assert bool(entry["reason"]) is not listed


def test_has_examples_needs_an_explicit_true():
    assert has_examples({"x-mlgate": {"has_examples": True}})
    for doc in ({}, {"x-mlgate": None}, {"x-mlgate": {"has_examples": "yes"}}):
        assert not has_examples(doc)


# -- through the gateway ------------------------------------------------------------------------

async def model_server(document: dict | None, info_status: int = 200) -> TestServer:
    app = web.Application()

    async def info(_request):
        if info_status != 200:
            return web.json_response({"message": "the model server broke"}, status=info_status)
        return web.json_response(document)

    app.router.add_get("/api/model/info", info)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def servers():
    started = {
        "wine": await model_server(model_document("wine", "1.0", True)),
        "plain": await model_server(model_document("plain", "1.0", False)),
        "broken": await model_server(None, info_status=500),
    }
    yield started
    for server in started.values():
        await server.close()


def build_table(servers) -> RouteTable:
    table = RouteTable()
    for dep_id, server in servers.items():
        table.upsert(dep_id, dep_id, "1.0")
        table.set_replicas(dep_id, [("127.0.0.1", server.port)])
    table.upsert("zero", "zero", "1.0")  # scaled to zero: never asked
    return table


@pytest.fixture
async def gw(servers):
    table = build_table(servers)
    client = TestClient(TestServer(create_app(GatewayConfig(), table, lambda _e: None),
                                   host="127.0.0.1"))
    await client.start_server()
    yield client, table
    await client.close()


async def test_the_list_names_every_deployment_and_why_some_are_not_listed(gw):
    client, _ = gw
    resp = await client.get("/service-catalog/api/models")
    assert resp.status == 200
    entries = {e["id"]: e for e in (await resp.json())["deployments"]}
    assert list(entries) == ["broken", "plain", "wine", "zero"]
    assert entries["wine"]["listed"] and entries["wine"]["title"] == "wine"
    assert "no input/output examples" in entries["plain"]["reason"]
    assert "(500: the model server broke)" in entries["broken"]["reason"]
    assert "no ready replica" in entries["zero"]["reason"]


async def test_a_document_is_rewritten_for_the_gateway(gw):
    client, _ = gw
    resp = await client.get("/service-catalog/api/models/wine")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["servers"][0]["url"] == "/model/wine"
    assert doc["security"] == [{BEARER_SCHEME: []}]
    missing = await client.get("/service-catalog/api/models/plain")
    assert missing.status == 404
    assert (await missing.json())["reason"] == "not_in_catalog"
    unknown = await client.get("/service-catalog/api/models/nope")
    assert unknown.status == 404 and "not found" in (await unknown.json())["message"]
    broken = await client.get("/service-catalog/api/models/broken")
    assert broken.status == 500


async def test_new_deployments_appear_and_gone_ones_leave_without_a_restart(gw, servers):
    client, table = gw
    table.upsert("wine-2", "wine", "2.0")
    table.set_replicas("wine-2", [("127.0.0.1", servers["wine"].port)])
    table.remove("broken")
    ids = [e["id"] for e in (await (await client.get("/service-catalog/api/models")).json())[
        "deployments"]]
    assert ids == ["plain", "wine", "wine-2", "zero"]


async def test_a_deployment_scaled_to_zero_keeps_its_last_document_for_its_model_version(gw):
    client, table = gw
    assert (await client.get("/service-catalog/api/models/wine")).status == 200
    table.set_replicas("wine", [])  # scaled to zero: listing must not start a replica
    entries = {e["id"]: e for e in (await (await client.get(
        "/service-catalog/api/models")).json())["deployments"]}
    assert entries["wine"]["listed"]
    doc = await client.get("/service-catalog/api/models/wine")
    assert doc.status == 200 and (await doc.json())["servers"][0]["url"] == "/model/wine"
    table.upsert("wine", "wine", "2.0")  # a new model version: the old document no longer fits
    entries = {e["id"]: e for e in (await (await client.get(
        "/service-catalog/api/models")).json())["deployments"]}
    assert not entries["wine"]["listed"] and "no ready replica" in entries["wine"]["reason"]


async def test_the_pages_are_served_with_headers_that_keep_them_to_their_origin(gw):
    client, _ = gw
    for path in ("/service-catalog/", "/service-catalog/catalog.js", "/status/",
                 "/status/uPlot.iife.min.js"):
        resp = await client.get(path)
        assert resp.status == 200, path
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    page = await (await client.get("/service-catalog/")).text()
    assert "swagger-ui-bundle.js" in page and "http" not in page.split("<body>")[1]  # no CDN
    redirect = await client.get("/service-catalog", allow_redirects=False)
    assert redirect.status == 302 and redirect.headers["Location"] == "/service-catalog/"


# -- under the caller's rights ------------------------------------------------------------------

ISSUER_KEYS = Issuer()
POLICY = parse_policy(yaml.safe_load("""
rules:
  - roles: [reader]
    actions: [read]
  - roles: [team-wine]
    actions: [read, info]
    resources: ["path:*", "deployment:wine"]
"""))


def bearer(*roles: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + ISSUER_KEYS.token(ISSUER_KEYS.claims(roles))}


@pytest.fixture
async def secured(servers):
    auth = AuthConfig(rules=ClaimRules(issuer=ISSUER, audiences=frozenset({AUDIENCE})),
                      static_keys=keys_from_jwks(ISSUER_KEYS.jwks()), policy=POLICY)
    client = TestClient(TestServer(create_app(GatewayConfig(auth=auth), build_table(servers),
                                              lambda _e: None), host="127.0.0.1"))
    await client.start_server()
    yield client
    await client.close()


async def test_documents_are_read_with_the_callers_token_and_rights(secured):
    assert (await secured.get("/service-catalog/api/models")).status == 401
    as_reader = await secured.get("/service-catalog/api/models", headers=bearer("reader"))
    entries = {e["id"]: e for e in (await as_reader.json())["deployments"]}
    assert not entries["wine"]["listed"]
    assert entries["wine"]["reason"].startswith("its OpenAPI document is not available (403: ")
    denied = await secured.get("/service-catalog/api/models/wine", headers=bearer("reader"))
    assert denied.status == 403  # the same right as /model/wine/api/model/info: info
    as_team = await secured.get("/service-catalog/api/models", headers=bearer("team-wine"))
    entries = {e["id"]: e for e in (await as_team.json())["deployments"]}
    assert entries["wine"]["listed"] and not entries["plain"]["listed"]
    doc = await secured.get("/service-catalog/api/models/wine", headers=bearer("team-wine"))
    assert doc.status == 200
    assert (await secured.get("/service-catalog/api/models/plain",
                              headers=bearer("team-wine"))).status == 403
