"""Canary rollouts in the management API (``spec.analysis`` of a ModelRoute):

- ``status.rollout`` on every route that has one (``GET /api/v1/model/route``, ``GET
  .../route/{id}``, and the answers of ``POST``/``PUT``), fields in
  ``deploy.control.rollout_view``;
- ``GET /api/v1/model/route/{id}/rollout``: the rollout with its analysis and its history
  (one entry per change of phase, step, weight or failed checks);
- ``POST /api/v1/model/route/{id}/rollout/{promote|abort|pause|resume}``: manual control;
  answers the rollout after it (404 without ``spec.analysis``, 409 when the phase does not
  allow it, e.g. resuming a rollout that is not paused).

A route written with ``spec.analysis`` is refused with 503 when this mlgate cannot judge
(the ``analysis`` extra is missing, or the live join is off). While a rollout runs, it owns
the route's weights: a ``PUT`` keeping the same analysis gets the rollout's weights whatever
it says (an ODAHU client writes back the weights it read), and a changed analysis starts a
new rollout at once, before the answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from deploy.api.common import STORE, Unavailable, answer
from deploy.control.rollout_state import route_weights, spec_hash
from deploy.control.rollout_view import rollout_document, rollout_status
from deploy.control.rollouts import ACTIONS, NoRollout, RolloutDriver, state_of
from deploy.control.routes import ModelDeploymentTarget, ModelRoute, route_analysis
from deploy.control.store import Store

ROLLOUTS = web.AppKey("mlgate_rollouts", RolloutDriver)


def status_rollout(store: Store, route: ModelRoute) -> dict[str, Any] | None:
    """``status.rollout`` of a route, or None (no ``spec.analysis``, or not started yet)."""
    spec = route_analysis(route) if not route.default else None
    if spec is None:
        return None
    state = state_of(route.id, store.get_rollout(route.id))
    return rollout_status(spec, state) if state is not None else None


def check_judgeable(request: web.Request, data: Any) -> None:
    """A route body with ``spec.analysis`` is refused (503) where rollouts cannot be judged,
    before anything else is checked: nothing else would make it work here."""
    spec = data.get("spec") if isinstance(data, dict) else None
    if not isinstance(spec, dict) or spec.get("analysis") is None:
        return
    driver = request.app.get(ROLLOUTS)
    if driver is None or driver.unavailable:
        raise Unavailable(driver.unavailable if driver is not None else
                          "this mlgate runs no canary rollouts")


def held_weights(request: web.Request, route: ModelRoute) -> ModelRoute:
    """A route about to be stored, with the running rollout's weights when its analysis stays
    the same (whatever weights the body said)."""
    spec = route_analysis(route)
    if spec is None:
        return route
    state = state_of(route.id, request.app[STORE].get_rollout(route.id))
    if state is None or state.spec_hash != spec_hash(spec):
        return route
    weights = route_weights(spec, state)
    targets = [ModelDeploymentTarget(t.md_name, weights.get(t.md_name, t.weight))
               for t in route.spec.model_deployments]
    return dataclasses.replace(route, spec=dataclasses.replace(route.spec,
                                                               model_deployments=targets))


def written(request: web.Request, route: ModelRoute) -> None:
    """After a route was stored: start (or start again) its rollout now."""
    driver = request.app.get(ROLLOUTS)
    if driver is not None and route.spec.analysis is not None:
        driver.tick([route.id])


async def get_rollout(request: web.Request) -> web.Response:
    store: Store = request.app[STORE]
    route_id = request.match_info["id"]
    route = store.get_route(route_id)
    spec = route_analysis(route) if not route.default else None
    if spec is None:
        raise NoRollout(f"model route {route_id} has no spec.analysis: it has no rollout")
    stored = store.get_rollout(route_id)
    state = state_of(route_id, stored)
    if stored is None or state is None:
        raise NoRollout(f"the rollout of model route {route_id} has not started yet")
    return answer(200, rollout_document(route_id, spec, state, stored.history))


def _action(action: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        driver = request.app.get(ROLLOUTS)
        if driver is None:
            raise Unavailable("this mlgate runs no canary rollouts")
        return answer(200, driver.act(request.match_info["id"], action))

    return handler


def add_routes(app: web.Application, prefix: str, driver: RolloutDriver | None) -> None:
    if driver is not None:
        app[ROLLOUTS] = driver
    base = f"{prefix}/model/route/{{id}}/rollout"
    app.router.add_get(base, get_rollout)
    for action in ACTIONS:
        app.router.add_post(f"{base}/{action}", _action(action))
