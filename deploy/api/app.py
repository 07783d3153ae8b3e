"""Mount the management API and its Swagger UI on an application."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

import feedback
import gateway
from deploy.api import (
    batch_jobs,
    dataset,
    deployments,
    model_routes,
    quality,
    records,
    revocations,
    rollouts,
)
from deploy.api.batch_jobs import BatchConfig
from deploy.api.common import EDGE_URL, STORE, add_error_mapping, answer, api_error_body
from deploy.api.openapi import openapi_document
from deploy.control.revocations import RevocationStore
from deploy.control.store import Store
from gateway import set_error_format

API_PREFIX = "/api/v1"
SWAGGER_PREFIX = "/swagger"
SWAGGER_UI_DIR = Path(gateway.__file__).resolve().parent / "static" / "swagger-ui"


def add_management_api(app: web.Application, store: Store, edge_url: str | None = None,
                       batch: BatchConfig | None = None,
                       record_source: records.RecordSource | None = None,
                       joiner: feedback.Joiner | None = None,
                       rollout_driver: rollouts.RolloutDriver | None = None,
                       revocation_store: RevocationStore | None = None) -> None:
    """``batch``: serve ``/api/v1/batch/job`` too (inference jobs); ``record_source``: the
    bucket ``GET /api/v1/records`` and ``GET /api/v1/dataset`` read; ``joiner``: the live
    quality figures; ``rollout_driver``: the canary rollouts (``spec.analysis``);
    ``revocation_store``: revoked tokens (``/api/v1/token/revocation``)."""
    app[STORE] = store
    if edge_url:
        app[EDGE_URL] = edge_url.rstrip("/")
    deployments.add_routes(app, API_PREFIX)
    model_routes.add_routes(app, API_PREFIX)
    if record_source is not None:
        records.add_routes(app, API_PREFIX, record_source)
        dataset.add_routes(app, API_PREFIX)
    quality.add_routes(app, API_PREFIX, joiner)
    rollouts.add_routes(app, API_PREFIX, rollout_driver)
    set_error_format(app, f"{API_PREFIX}/model/", api_error_body)
    set_error_format(app, f"{API_PREFIX}/dataset", api_error_body)
    if batch is not None:
        batch_jobs.add_routes(app, API_PREFIX, batch)
        set_error_format(app, f"{API_PREFIX}/batch/", api_error_body)
    if revocation_store is not None:
        revocations.add_routes(app, API_PREFIX, revocation_store)
        set_error_format(app, f"{API_PREFIX}{revocations.REVOCATIONS_PATH}", api_error_body)
    add_error_mapping(app)
    add_swagger_ui(app)


def add_swagger_ui(app: web.Application) -> None:
    """``/swagger/index.html`` shows ``/swagger/openapi.json``, assets served from this package."""
    document = openapi_document()

    async def spec(_request: web.Request) -> web.Response:
        return answer(200, document)

    async def to_index(_request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{SWAGGER_PREFIX}/index.html")

    app.router.add_get(f"{SWAGGER_PREFIX}/openapi.json", spec)
    app.router.add_get(SWAGGER_PREFIX, to_index)
    app.router.add_get(f"{SWAGGER_PREFIX}/", to_index)
    app.router.add_static(f"{SWAGGER_PREFIX}/", SWAGGER_UI_DIR)
