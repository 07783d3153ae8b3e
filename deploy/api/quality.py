"""``GET /api/v1/model/deployment/{id}/quality`` and ``GET /api/v1/model/route/{id}/quality``:
the live join's figures (:mod:`feedback`), per deployment and per target of a route.

Query: ``since`` and ``until`` (UTC; an ISO date or time such as ``2026-11-25T10:00``, or a
duration back from now such as ``6h``; default: ``until`` now, ``since`` 24 windows before),
``window`` (bucket width, whole minutes: ``1m``, ``15m``, ``1h``; default the deployment's
``spec.quality.window``). Spans are in prediction time: a label that came late counts in the
bucket of its prediction.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

import feedback
from deploy.api.common import STORE, Unavailable, answer
from deploy.control.deployments import ModelDeployment
from deploy.control.durations import parse_duration
from deploy.control.resource import ValidationError
from deploy.control.routes import ModelRoute
from storage import parse_bound

JOINER = web.AppKey("mlgate_joiner", feedback.Joiner)
DEFAULT_BUCKETS = 24
QUERY_VALIDATION = "Invalid quality query"


def _time(value: str, name: str, now: float, errors: list[str]) -> int | None:
    try:
        return int(parse_bound(value).timestamp())
    except ValueError:
        pass
    try:
        return int(now - parse_duration(value))
    except ValueError:
        errors.append(f"{name} must be a UTC date or time (2026-11-25, 2026-11-25T10:00) or "
                      f"a duration back from now (6h, 30m), got {value!r}")
        return None


def parse_span(query: Mapping[str, str], spec_window: int, horizon: int,
               now: float) -> tuple[int, int, int]:
    """``(since, until, window)`` in seconds from the query (defaults in the module docstring);
    ``ValidationError`` naming every bad parameter."""
    errors: list[str] = []
    window = spec_window
    if query.get("window"):
        try:
            seconds = parse_duration(query["window"])
        except ValueError as exc:
            errors.append(f"window {exc}")
        else:
            if seconds < feedback.CELL_SECONDS or seconds % feedback.CELL_SECONDS:
                errors.append("window must be a whole number of minutes (1m, 15m, 1h), got "
                              f"{query['window']!r}")
            else:
                window = int(seconds)
    until = _time(query["until"], "until", now, errors) if query.get("until") else int(now)
    since = _time(query["since"], "since", now, errors) if query.get("since") else None
    unknown = sorted(set(query) - {"since", "until", "window"})
    if unknown:
        errors.append(f"unknown parameter(s): {', '.join(unknown)}")
    if errors:
        raise ValidationError(QUERY_VALIDATION, errors)
    assert until is not None
    if since is None:
        since = max(until - DEFAULT_BUCKETS * window, int(now) - horizon)
    if until <= since:
        raise ValidationError(QUERY_VALIDATION, ["until must be after since"])
    return since, until, window


def _joiner(request: web.Request) -> feedback.Joiner:
    joiner = request.app.get(JOINER)
    if joiner is None:
        raise Unavailable("this mlgate keeps no quality figures (quality.enabled: false)")
    return joiner


def _document(joiner: feedback.Joiner, dep: ModelDeployment, query: Mapping[str, str],
              route: Any = feedback.ANY_ROUTE, span: tuple[int, int, int] | None = None,
              ) -> dict[str, Any]:
    index = joiner.index
    if span is None:
        span = parse_span(query, index.spec(dep.id).window, index.limits.horizon, time.time())
    since, until, window = span
    try:
        doc = feedback.deployment_document(index, dep.id, since, until, window, route)
    except feedback.ReportError as exc:
        raise ValidationError(QUERY_VALIDATION, [str(exc)]) from None
    return {"deployment_id": dep.id, "model_name": dep.status.model_name,
            "model_version": dep.status.model_version, **doc,
            "complete": joiner.complete, "rebuilding": joiner.rebuilding}


async def deployment_quality(request: web.Request) -> web.Response:
    joiner = _joiner(request)
    dep = request.app[STORE].get_deployment(request.match_info["id"])
    return answer(200, _document(joiner, dep, request.query))


async def route_quality(request: web.Request) -> web.Response:
    """Per target deployment, the requests this route sent it (a mirror's copies apart)."""
    joiner = _joiner(request)
    store = request.app[STORE]
    route: ModelRoute = store.get_route(request.match_info["id"])
    targets = [t.md_name for t in route.spec.model_deployments]
    first = store.get_deployment(targets[0]) if store.has_deployment(targets[0]) else None
    spec_window = joiner.index.spec(first.id).window if first else feedback.QualitySpec.window
    span = parse_span(request.query, spec_window, joiner.index.limits.horizon, time.time())
    key = "" if route.default else route.id
    docs = []
    for dep_id in targets:
        if store.has_deployment(dep_id):
            docs.append(_document(joiner, store.get_deployment(dep_id), request.query, key,
                                  span))
    out: dict[str, Any] = {"route_id": route.id, "since": feedback.iso(span[0]),
                           "until": feedback.iso(span[1]),
                           "window": feedback.window_text(span[2]), "targets": docs,
                           "complete": joiner.complete}
    if route.spec.mirror and store.has_deployment(route.spec.mirror):
        out["mirror"] = _document(joiner, store.get_deployment(route.spec.mirror),
                                  request.query, feedback.MIRROR_PREFIX + route.id, span)
    return answer(200, out)


def status_quality(request: web.Request, dep: ModelDeployment) -> dict[str, Any]:
    """``status.quality`` of a deployment: how its quality is measured (spec or inferred)."""
    joiner = request.app.get(JOINER)
    if joiner is None:
        return {"state": feedback.NOT_CONFIGURED,
                "reason": "this mlgate keeps no quality figures (quality.enabled: false)"}
    return feedback.describe(joiner.index.spec(dep.id), joiner.index.seen.get(dep.id))


def add_routes(app: web.Application, prefix: str, joiner: feedback.Joiner | None) -> None:
    if joiner is not None:
        app[JOINER] = joiner
    app.router.add_get(f"{prefix}/model/deployment/{{id}}/quality", deployment_quality)
    app.router.add_get(f"{prefix}/model/route/{{id}}/quality", route_quality)
