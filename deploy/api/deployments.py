"""``/api/v1/model/deployment``: list, get, create, update, delete, default route."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from deploy.api.common import STORE, answer, edge_url, read_object
from deploy.api.quality import status_quality
from deploy.control.deployments import ModelDeployment, parse_deployment
from deploy.control.images import resolve_image
from deploy.control.routes import route_status
from deploy.control.store import Store


def _store(request: web.Request) -> Store:
    return request.app[STORE]


async def _parse(request: web.Request) -> ModelDeployment:
    """The body as a validated deployment; relative ``file://`` images resolve from mlgate's cwd."""
    dep = parse_deployment(await read_object(request))
    dep.spec.image = resolve_image(dep.spec.image, Path.cwd())
    return dep


def _shown(request: web.Request, dep: ModelDeployment) -> dict:
    """The deployment as the API shows it: its ``status.quality`` added (the live join's)."""
    out = dep.to_dict()
    out["status"]["quality"] = status_quality(request, dep)
    return out


async def list_deployments(request: web.Request) -> web.Response:
    return answer(200, [_shown(request, d) for d in _store(request).list_deployments()])


async def get_deployment(request: web.Request) -> web.Response:
    return answer(200, _shown(request, _store(request).get_deployment(request.match_info["id"])))


async def create_deployment(request: web.Request) -> web.Response:
    return answer(201, _shown(request, _store(request).create_deployment(await _parse(request))))


async def update_deployment(request: web.Request) -> web.Response:
    return answer(200, _shown(request, _store(request).update_deployment(await _parse(request))))


async def delete_deployment(request: web.Request) -> web.Response:
    dep_id = request.match_info["id"]
    _store(request).mark_deleting(dep_id)
    return answer(200, {"message": f"Model deployment {dep_id} was deleted"})


async def default_route(request: web.Request) -> web.Response:
    store = _store(request)
    route = store.default_route(request.match_info["id"])
    states = {d.id: d.status.state for d in store.list_deployments()}
    route.status = route_status(route, states, edge_url(request))
    return answer(200, route.to_dict())


def add_routes(app: web.Application, prefix: str) -> None:
    base = f"{prefix}/model/deployment"
    app.router.add_get(base, list_deployments)
    app.router.add_post(base, create_deployment)
    app.router.add_put(base, update_deployment)
    app.router.add_get(base + "/{id}", get_deployment)
    app.router.add_delete(base + "/{id}", delete_deployment)
    app.router.add_get(base + "/{id}/default-route", default_route)
