"""ModelRoute: ODAHU v1 shape, defaults and validation — pure functions.

A route sends the requests under its ``urlPrefix`` to one or several model
deployments, split by weights that sum to 100, and may mirror them to one more.
Every deployment gets a *default* route ``/model/<id>`` (one target, weight 100)
that only the control plane creates and deletes. User routes live under
``/custom/``. Whether the named deployments exist is asked through a callable,
so validation stays pure.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .models import ValidationError, validate_id

ROUTE_VALIDATION = "Validation of model route is failed"
CUSTOM_PREFIX = "/custom/"
URL_PREFIX_PATTERN = re.compile(r"^/custom(/[A-Za-z0-9._~-]+)+$")
MAX_WEIGHT = 100

ROUTE_READY = "Ready"
ROUTE_PROCESSING = "Processing"
ROUTE_FAILED = "Failed"


@dataclass
class ModelDeploymentTarget:
    md_name: str
    weight: int = MAX_WEIGHT

    def to_dict(self) -> dict[str, Any]:
        return {"mdName": self.md_name, "weight": self.weight}


@dataclass
class ModelRouteSpec:
    url_prefix: str
    model_deployments: list[ModelDeploymentTarget]
    mirror: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "urlPrefix": self.url_prefix,
            "modelDeployments": [t.to_dict() for t in self.model_deployments],
        }
        if self.mirror:
            out["mirror"] = self.mirror
        return out


@dataclass
class ModelRouteStatus:
    state: str = ""
    edge_url: str = ""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {"state": self.state, "edgeUrl": self.edge_url}
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass
class ModelRoute:
    id: str
    spec: ModelRouteSpec
    default: bool = False
    status: ModelRouteStatus = field(default_factory=ModelRouteStatus)
    created_at: str = ""
    updated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "default": self.default,
            "spec": self.spec.to_dict(),
            "status": self.status.to_dict(),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }

    def deployment_ids(self) -> list[str]:
        ids = [t.md_name for t in self.spec.model_deployments]
        return ids + ([self.spec.mirror] if self.spec.mirror else [])


def default_route(md_id: str) -> ModelRoute:
    """The route every deployment gets: ``/model/<id>``, all traffic to it.

    Its id is ODAHU's: the deployment id and five random hex digits.
    """
    return ModelRoute(
        id=f"{md_id}-{secrets.token_hex(3)[:5]}", default=True,
        spec=ModelRouteSpec(url_prefix=f"/model/{md_id}",
                            model_deployments=[ModelDeploymentTarget(md_id, MAX_WEIGHT)]))


def parse_route(data: Any, deployment_exists: Callable[[str], bool]) -> ModelRoute:
    """Validate and default a user's ModelRoute; ``ValidationError`` lists every problem."""
    if not isinstance(data, dict):
        raise ValidationError(ROUTE_VALIDATION, ["the model route must be an object"])
    errors: list[str] = []
    kind = data.get("kind")
    if kind is not None and kind != "ModelRoute":
        errors.append(f"kind must be ModelRoute, got {kind!r}")
    route_id = data.get("id")
    if route_id is None and isinstance(data.get("metadata"), dict):
        route_id = data["metadata"].get("name")
    errors += validate_id(route_id)
    if data.get("default"):
        errors.append("unable to create default route: default routes belong to their "
                      "model deployment")
    raw = data.get("spec")
    if not isinstance(raw, dict):
        errors.append("spec must be an object with urlPrefix and modelDeployments")
        raise ValidationError(ROUTE_VALIDATION, errors)
    unknown = sorted(set(raw) - {"urlPrefix", "modelDeployments", "mirror"})
    if unknown:
        errors.append(f"unknown spec field(s): {', '.join(unknown)}")
    errors += _url_prefix_errors(raw.get("urlPrefix"))
    targets, target_errors = _parse_targets(raw.get("modelDeployments"), deployment_exists)
    errors += target_errors
    mirror = raw.get("mirror") or None
    if mirror is not None:
        if not isinstance(mirror, str):
            errors.append("mirror must be a model deployment id")
        elif not deployment_exists(mirror):
            errors.append(f'mirror: entity "{mirror}" is not found')
    if errors:
        raise ValidationError(ROUTE_VALIDATION, errors)
    return ModelRoute(id=route_id, spec=ModelRouteSpec(raw["urlPrefix"], targets, mirror))


def _url_prefix_errors(prefix: Any) -> list[str]:
    if not isinstance(prefix, str) or not prefix:
        return ["empty URL Prefix"]
    if not prefix.startswith("/"):
        return ["the URL prefix must start with slash"]
    if not prefix.startswith(CUSTOM_PREFIX):
        return [f"the URL prefix {prefix!r} is forbidden: routes live under {CUSTOM_PREFIX}"]
    if not URL_PREFIX_PATTERN.match(prefix):
        return [f"the URL prefix {prefix!r} must be {CUSTOM_PREFIX}<name>[/<name>...] with "
                "letters, digits, '.', '_', '~' or '-' in each name, and no trailing slash"]
    return []


def _parse_targets(raw: Any, deployment_exists: Callable[[str], bool],
                   ) -> tuple[list[ModelDeploymentTarget], list[str]]:
    if not isinstance(raw, list) or not raw:
        return [], ["model deployment targets must contain at least one element"]
    errors: list[str] = []
    targets: list[ModelDeploymentTarget] = []
    seen: set[str] = set()
    missing_weight = False
    for i, item in enumerate(raw):
        where = f"modelDeployments[{i}]"
        if not isinstance(item, dict):
            errors.append(f"{where} must be an object with mdName and weight")
            continue
        name = item.get("mdName")
        if not isinstance(name, str) or not name:
            errors.append(f"{where}.mdName must name a model deployment")
            continue
        if name in seen:
            errors.append(f"{where}: model deployment {name!r} is listed twice")
        seen.add(name)
        if not deployment_exists(name):
            errors.append(f'entity "{name}" is not found')
        weight = item.get("weight")
        if weight is None:
            missing_weight = True
            weight = MAX_WEIGHT
        elif isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            errors.append(f"{where}.weight must be an integer from 0 to 100, got {weight!r}")
            continue
        targets.append(ModelDeploymentTarget(name, weight))
    if len(raw) == 1:
        if targets and targets[0].weight != MAX_WEIGHT:
            errors.append("it must have 100 weight or nil value if there is only one target")
    else:
        if missing_weight:
            errors.append("weights must be present if there are more than one model "
                          "deployment targets")
        elif len(targets) == len(raw) and sum(t.weight for t in targets) != MAX_WEIGHT:
            errors.append(f"total target weight does not equal 100 (got "
                          f"{sum(t.weight for t in targets)})")
    return targets, errors


def route_status(route: ModelRoute, deployment_states: dict[str, str], base_url: str,
                 ) -> ModelRouteStatus:
    """A route is Ready when every deployment it names exists and is not being deleted."""
    edge_url = base_url.rstrip("/") + route.spec.url_prefix
    missing = [d for d in route.deployment_ids() if d not in deployment_states]
    if missing:
        return ModelRouteStatus(ROUTE_FAILED, edge_url,
                                f"model deployment(s) not found: {', '.join(missing)}")
    deleting = [d for d in route.deployment_ids() if deployment_states[d] == "Deleting"]
    if deleting:
        return ModelRouteStatus(ROUTE_PROCESSING, edge_url,
                                f"model deployment(s) being deleted: {', '.join(deleting)}")
    return ModelRouteStatus(ROUTE_READY, edge_url)


def route_from_stored(route_id: str, default: bool, spec: dict[str, Any], created_at: str,
                      updated_at: str) -> ModelRoute:
    """Rebuild a stored route (already validated when it was written)."""
    targets = [ModelDeploymentTarget(t["mdName"], int(t["weight"]))
               for t in spec["modelDeployments"]]
    return ModelRoute(id=route_id, default=default,
                      spec=ModelRouteSpec(spec["urlPrefix"], targets, spec.get("mirror")),
                      created_at=created_at, updated_at=updated_at)
