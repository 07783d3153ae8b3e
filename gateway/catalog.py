"""The service catalog: ``/service-catalog/``, Swagger UI over every deployment's API.

``GET /service-catalog/api/models`` (action ``read``) lists the deployments of the
routing table, so a new deployment appears without a restart. Each one's OpenAPI
document is ``GET /service-catalog/api/models/<id>`` (action ``info`` on that
deployment, the right ``/model/<id>/api/model/info`` needs). As in ODAHU, a model
appears only when it provides input and output examples (its document says
``x-mlgate.has_examples``); one that does not is listed with the reason.

A document is read through the gateway itself: a request to its own
``/model/<id>/api/model/info``, on the local address of the caller's connection and
with the caller's token. So it comes from exactly where a client gets it (a replica,
or a document the gateway holds for the deployment), under the caller's rights.
:func:`catalog_document` then rewrites it: its server becomes the gateway's
``/model/<id>`` and it carries a bearer-token security scheme, so "Try it out" goes
through the gateway with the token given in the Authorize dialog.

Listing never starts a replica: a deployment with none ready shows the last
document read for the same model version, or says why it has none.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from .errors import UpstreamError, error_response, json_response
from .pages import STATIC_DIR, SWAGGER_UI_DIR, add_page
from .request_id import REQUEST_ID_KEY
from .routing import Deployment, Replica, RouteTable
from .upstream import UpstreamPool

CATALOG_PREFIX = "/service-catalog/"
DOCUMENTS_PATH = "/service-catalog/api/models"
INFO_PATH = "/api/model/info"
BEARER_SCHEME = "bearerAuth"
PAGE_DIR = STATIC_DIR / "service-catalog"
FETCH_CONCURRENCY = 8
FETCH_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class Fetched:
    """What ``/model/<id>/api/model/info`` answered: a status and the JSON document, if any."""

    status: int
    document: dict[str, Any] | None = None
    message: str = ""


def has_examples(document: dict[str, Any]) -> bool:
    extension = document.get("x-mlgate")
    return isinstance(extension, dict) and extension.get("has_examples") is True


def listing(dep: Deployment, fetched: Fetched | None) -> dict[str, Any]:
    """One entry of the catalog list; ``fetched`` None: there was nothing to ask."""
    entry: dict[str, Any] = {
        "id": dep.id, "model_name": dep.model_name, "model_version": dep.model_version,
        "document": f"{DOCUMENTS_PATH}/{dep.id}", "listed": False, "reason": ""}
    doc = fetched.document if fetched is not None else None
    if fetched is None:
        entry["reason"] = ("no ready replica (scaled to zero or starting): its API is read "
                           "once a replica is ready")
    elif fetched.status != 200:
        entry["reason"] = f"its OpenAPI document is not available ({fetched.status}: " \
                          f"{fetched.message or 'no message'})"
    elif doc is None or not isinstance(doc.get("paths"), dict):
        entry["reason"] = "its info document is not an OpenAPI document"
    elif not has_examples(doc):
        entry["reason"] = ("the model provides no input/output examples, so it is not in "
                           "the catalog (log the MLflow model with an input example)")
    else:
        info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
        entry["listed"] = True
        entry["title"] = str(info.get("title", dep.model_name))
    return entry


def catalog_document(document: dict[str, Any], deployment_id: str) -> dict[str, Any]:
    """The model's document as the catalog shows it: served at the gateway's
    ``/model/<id>``, every operation needing the bearer token."""
    doc = copy.deepcopy(document)
    doc["servers"] = [{"url": f"/model/{deployment_id}",
                       "description": f"model deployment {deployment_id} through mlgate"}]
    components = doc.get("components") if isinstance(doc.get("components"), dict) else {}
    schemes = components.get("securitySchemes")
    schemes = dict(schemes) if isinstance(schemes, dict) else {}
    schemes[BEARER_SCHEME] = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                              "description": "An mlgate token (`mlgate token`)"}
    doc["components"] = {**components, "securitySchemes": schemes}
    doc["security"] = [{BEARER_SCHEME: []}]
    info = doc.get("info") if isinstance(doc.get("info"), dict) else {}
    title = info.get("title", deployment_id)
    doc["info"] = {**info, "title": f"{deployment_id}: {title}"}
    extension = doc.get("x-mlgate") if isinstance(doc.get("x-mlgate"), dict) else {}
    doc["x-mlgate"] = {**extension, "deployment": deployment_id}
    return doc


def self_address(request: web.Request) -> Replica | None:
    """The gateway's own address on this connection (TCP only)."""
    sock = request.transport.get_extra_info("sockname") if request.transport else None
    if not isinstance(sock, tuple) or len(sock) < 2:
        return None
    host = str(sock[0])
    return Replica(f"[{host}]" if ":" in host else host, int(sock[1]))


class Catalog:
    """Reads documents through the gateway and remembers the last good one per deployment."""

    def __init__(self, table: RouteTable, pool: UpstreamPool) -> None:
        self.table = table
        self.pool = pool
        self._last: dict[str, tuple[str, str, Fetched]] = {}

    async def fetch(self, request: web.Request, dep: Deployment) -> Fetched:
        """``GET /model/<id>/api/model/info`` through this gateway, as the caller."""
        me = self_address(request)
        if me is None:
            return Fetched(503, message="the catalog reads documents over TCP only")
        headers = {"Request-ID": f"{request[REQUEST_ID_KEY][:100]}.catalog",
                   "Accept": "application/json"}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        try:
            resp = await asyncio.wait_for(self.pool.send(
                me, "GET", f"/model/{dep.id}{INFO_PATH}", headers, b""), FETCH_TIMEOUT)
        except UpstreamError as exc:
            return Fetched(502, message=exc.message)
        except TimeoutError:
            return Fetched(504, message=f"no answer within {FETCH_TIMEOUT:g}s")
        try:
            body = orjson.loads(resp.body)
        except orjson.JSONDecodeError:
            return Fetched(resp.status if resp.status != 200 else 502,
                           message="the answer is not JSON")
        if resp.status != 200:
            message = body.get("message", "") if isinstance(body, dict) else ""
            return Fetched(resp.status, message=str(message))
        fetched = Fetched(200, body if isinstance(body, dict) else None)
        self._last[dep.id] = (dep.model_name, dep.model_version, fetched)
        return fetched

    def last(self, dep: Deployment) -> Fetched | None:
        """The last document read for this deployment's current model version."""
        remembered = self._last.get(dep.id)
        if remembered is None or remembered[:2] != (dep.model_name, dep.model_version):
            return None
        return remembered[2]

    async def entries(self, request: web.Request) -> list[dict[str, Any]]:
        deployments = sorted(self.table.deployments(), key=lambda d: d.id)
        for gone in set(self._last) - {d.id for d in deployments}:
            del self._last[gone]
        limit = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def one(dep: Deployment) -> dict[str, Any]:
            if not dep.replicas:
                return listing(dep, self.last(dep))
            async with limit:
                return listing(dep, await self.fetch(request, dep))

        return list(await asyncio.gather(*(one(d) for d in deployments)))

    async def document(self, request: web.Request, dep: Deployment) -> web.Response:
        fetched = self.last(dep) if not dep.replicas else None
        if fetched is None:
            fetched = await self.fetch(request, dep)
        entry = listing(dep, fetched)
        if not entry["listed"]:
            status = fetched.status if fetched.status != 200 else 404
            return error_response(status, f"model deployment {dep.id!r} is not in the service "
                                          f"catalog: {entry['reason']}", "not_in_catalog")
        assert fetched.document is not None
        return json_response(200, catalog_document(fetched.document, dep.id))


def add_routes(app: web.Application, table: RouteTable, pool: UpstreamPool) -> None:
    """The page (open static files), the list and the per-deployment documents."""
    catalog = Catalog(table, pool)

    async def models(request: web.Request) -> web.Response:
        return json_response(200, {"deployments": await catalog.entries(request)})

    async def model(request: web.Request) -> web.Response:
        dep_id = request.match_info["deployment"]
        dep = table.get(dep_id)
        if dep is None:
            return error_response(404, f"model deployment {dep_id!r} not found", "not_found")
        return await catalog.document(request, dep)

    app.router.add_get(DOCUMENTS_PATH, models, name="catalog-models")
    app.router.add_get(DOCUMENTS_PATH + "/{deployment}", model, name="catalog-model")
    add_page(app, CATALOG_PREFIX, {
        "": PAGE_DIR / "index.html", "index.html": PAGE_DIR / "index.html",
        "catalog.js": PAGE_DIR / "catalog.js", "catalog.css": PAGE_DIR / "catalog.css",
        "mlgate-token.js": SWAGGER_UI_DIR / "mlgate-token.js",
        "swagger-ui-bundle.js": SWAGGER_UI_DIR / "swagger-ui-bundle.js",
        "swagger-ui.css": SWAGGER_UI_DIR / "swagger-ui.css",
    })
