"""Every route the composed ``mlgate up`` app registers refuses a request without a valid token.

The routes are read from the app's router, so a route someone adds later is covered
the day it lands: it must be authenticated (401 here) or be one of the open paths.
The one documented exception beyond ``/health`` and ``/metrics``: ``GET``/``HEAD`` of
the browser pages' static files (``PAGE_ASSETS``), which hold no data.
"""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient, TestServer

from deploy.compose import build_app, build_writer
from deploy.config import load_settings
from deploy.control.revocations import RevocationStore
from deploy.control.store import Store
from gateway import RouteTable
from gateway.auth.classify import OPEN_ASSETS, OPEN_PATHS, PAGE_ASSETS, is_open

SAMPLE = {"deployment": "wine-v1", "tail": "/api/model/invoke", "filename": "index.html"}
DATA_ENDPOINTS = ["/openapi.json", "/swagger/openapi.json", "/service-catalog/api/models",
                  "/service-catalog/api/models/wine-v1", "/status/api/summary"]


def concrete(formatter: str) -> str:
    """``/model/{deployment}{tail}`` -> ``/model/wine-v1/api/model/invoke``."""
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE.get(m.group(1), "x"), formatter)


@pytest.fixture
async def app_client(tmp_path):
    # every route gets a bad token here: the limit on invalid tokens per address is off
    settings = load_settings(env={"MLGATE_AUTH_INVALID_TOKEN_RATE": "0"},
                             overrides={"data_dir": str(tmp_path)})
    writer = build_writer(settings)
    await writer.start()
    table = RouteTable()
    table.upsert("wine-v1", "wine", "1.0")
    store = Store(tmp_path / "state.db")
    revocations = RevocationStore(tmp_path / "state.db")
    app = build_app(settings, table, writer, store=store,  # the management API too
                    revocation_store=revocations)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield app, client
    await client.close()
    await writer.close()
    store.close()
    revocations.close()


async def test_every_registered_route_needs_a_token(app_client):
    app, client = app_client
    checked = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or concrete(info.get("formatter", ""))
        if not path and "prefix" in info:  # a static directory: one of its files
            path = info["prefix"] + "/index.html"
        if not path:
            continue
        methods = ["GET", "POST", "PUT", "DELETE"] if route.method == "*" else [route.method]
        for method in methods:
            if method == "HEAD":
                continue
            for headers in ({}, {"Authorization": "Bearer not.a.token"},
                            {"Authorization": "Basic YWxpY2U6c2VjcmV0"}):
                resp = await client.request(method, path, headers=headers,
                                            allow_redirects=False)
                if is_open(method, path):
                    assert resp.status != 401, (method, path)
                else:
                    assert resp.status == 401, (method, path, headers, await resp.text())
                    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            checked.append((method, path))
    paths = {p for _, p in checked}
    assert {"/model/wine-v1/api/model/invoke", "/feedback/model/", "/api/v1/feedback",
            "/health", "/metrics", *DATA_ENDPOINTS} <= paths, paths
    open_served = {p for m, p in checked if is_open(m, p)}
    assert open_served - OPEN_PATHS <= OPEN_ASSETS  # nothing else is open


async def test_data_endpoints_of_the_pages_need_a_token_whatever_the_method(app_client):
    _, client = app_client
    for path in DATA_ENDPOINTS:
        for method in ("GET", "HEAD", "POST"):
            resp = await client.request(method, path)
            assert resp.status == 401, (method, path)


async def test_the_open_static_files_are_exactly_the_listed_ones_and_hold_no_data(app_client):
    """Each listed asset is served without a token, as a page file (not JSON); only GET and
    HEAD are open; a name under the same prefixes that is not listed needs a token."""
    _, client = app_client
    for prefix, names in PAGE_ASSETS.items():
        for name in names:
            resp = await client.get(prefix + name)
            assert resp.status == 200, prefix + name
            kind = resp.headers["Content-Type"].split(";")[0]
            assert kind in ("text/html", "text/javascript", "application/javascript",
                            "text/css", "image/png"), (prefix + name, kind)
            assert (await client.head(prefix + name)).status == 200
            refused = await client.post(prefix + name)
            assert refused.status == 401, prefix + name
        redirect = await client.get(prefix.rstrip("/"), allow_redirects=False)
        assert redirect.status in (301, 302), prefix
        for unlisted in ("secret.json", "index.htm", "api", "x.js"):
            assert (await client.get(prefix + unlisted)).status == 401, prefix + unlisted
