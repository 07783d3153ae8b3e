"""``/api/v1/model/route``: list, get, create, update, delete (default routes are read-only)."""

from __future__ import annotations

from aiohttp import web

from deploy.api.common import STORE, answer, edge_url, read_object
from deploy.api.rollouts import check_judgeable, held_weights, status_rollout, written
from deploy.control.resource import ValidationError
from deploy.control.routes import (
    ROUTE_VALIDATION,
    ModelRoute,
    keep_analysis,
    parse_route,
    route_status,
)
from deploy.control.store import NotFound, Store

KEPT_ANALYSIS = ("spec.analysis was kept from the stored route because the request has none: "
                 "send \"analysis\": null to remove it")


def _store(request: web.Request) -> Store:
    return request.app[STORE]


def _with_status(request: web.Request, routes: list[ModelRoute]) -> list[dict]:
    states = {d.id: d.status.state for d in _store(request).list_deployments()}
    base = edge_url(request)
    out = []
    for route in routes:
        route.status = route_status(route, states, base)
        doc = route.to_dict()
        rollout = status_rollout(_store(request), route)
        if rollout is not None:
            doc["status"]["rollout"] = rollout
        out.append(doc)
    return out


async def list_routes(request: web.Request) -> web.Response:
    return answer(200, _with_status(request, _store(request).list_routes()))


async def get_route(request: web.Request) -> web.Response:
    route = _store(request).get_route(request.match_info["id"])
    return answer(200, _with_status(request, [route])[0])


async def create_route(request: web.Request) -> web.Response:
    store = _store(request)
    data = await read_object(request)
    check_judgeable(request, data)
    route = parse_route(data, store.has_deployment)
    route = store.create_route(held_weights(request, route))
    written(request, route)
    return answer(201, _with_status(request, [store.get_route(route.id)])[0])


async def update_route(request: web.Request) -> web.Response:
    """PUT replaces the spec, except ``spec.analysis``: a body without the field keeps the
    stored one (ODAHU clients cannot send it); ``"analysis": null`` removes it."""
    store = _store(request)
    data = await read_object(request)
    try:
        current = store.get_route(data["id"]) if isinstance(data.get("id"), str) else None
    except NotFound:
        current = None
    kept = keep_analysis(data, current)
    check_judgeable(request, kept)
    try:
        route = parse_route(kept, store.has_deployment)
    except ValidationError as exc:
        if kept is data or not any(e.startswith("spec.analysis") for e in exc.errors):
            raise
        raise ValidationError(ROUTE_VALIDATION, [*exc.errors, KEPT_ANALYSIS]) from None
    route = store.update_route(held_weights(request, route))
    written(request, route)
    return answer(200, _with_status(request, [store.get_route(route.id)])[0])


async def delete_route(request: web.Request) -> web.Response:
    route_id = request.match_info["id"]
    _store(request).delete_route(route_id)
    return answer(200, {"message": f"Model route {route_id} was deleted"})


def add_routes(app: web.Application, prefix: str) -> None:
    base = f"{prefix}/model/route"
    app.router.add_get(base, list_routes)
    app.router.add_post(base, create_route)
    app.router.add_put(base, update_route)
    app.router.add_get(base + "/{id}", get_route)
    app.router.add_delete(base + "/{id}", delete_route)
