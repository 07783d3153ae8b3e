"""Every route the composed ``mlgate up`` app registers refuses a request without a valid token.

The routes are read from the app's router, so a route someone adds later is covered
the day it lands: it must be authenticated (401 here) or be one of the open paths.
"""

from __future__ import annotations

import re

import pytest
from aiohttp.test_utils import TestClient, TestServer

from deploy.config import load_settings
from deploy.up import build_app, build_writer
from gateway import RouteTable
from gateway.auth.classify import OPEN_PATHS

SAMPLE = {"deployment": "wine-v1", "tail": "/api/model/invoke"}


def concrete(formatter: str) -> str:
    """``/model/{deployment}{tail}`` -> ``/model/wine-v1/api/model/invoke``."""
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE.get(m.group(1), "x"), formatter)


@pytest.fixture
async def app_client(tmp_path):
    settings = load_settings(env={}, overrides={"data_dir": str(tmp_path)})
    writer = build_writer(settings)
    await writer.start()
    table = RouteTable()
    table.upsert("wine-v1", "wine", "1.0")
    app = build_app(settings, table, writer)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield app, client
    await client.close()
    await writer.close()


async def test_every_registered_route_needs_a_token(app_client):
    app, client = app_client
    checked = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or concrete(info.get("formatter", ""))
        if not path:
            continue
        methods = ["GET", "POST", "PUT", "DELETE"] if route.method == "*" else [route.method]
        for method in methods:
            if method == "HEAD":
                continue
            for headers in ({}, {"Authorization": "Bearer not.a.token"},
                            {"Authorization": "Basic YWxpY2U6c2VjcmV0"}):
                resp = await client.request(method, path, headers=headers)
                if path in OPEN_PATHS:
                    assert resp.status != 401, (method, path)
                else:
                    assert resp.status == 401, (method, path, headers, await resp.text())
                    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            checked.append((method, path))
    paths = {p for _, p in checked}
    assert {"/model/wine-v1/api/model/invoke", "/feedback/model/", "/api/v1/feedback",
            "/openapi.json", "/health"} <= paths, paths
