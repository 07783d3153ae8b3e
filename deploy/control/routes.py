"""ModelRoute: ODAHU v1 shape, defaults and validation — pure functions.

A route sends the requests under its ``urlPrefix`` to one or several model
deployments, split by weights that sum to 100, and may mirror them to one more.
Every deployment gets a *default* route ``/model/<id>`` (one target, weight 100)
that only the control plane creates and deletes. User routes live under
``/custom/``. Whether the named deployments exist is asked through a callable,
so validation stays pure.

mlgate's optional spec fields (absent, a route behaves as in ODAHU: weighted
random, every request mirrored, no override):

- ``sticky``: ``{header: NAME}``, ``{cookie: NAME}`` or ``{jwtClaim: NAME}`` (e.g. ``sub``):
  the same key always gets the same target while the weights stay the same;
- ``mirrorPercentage``: 0-100, the share of requests copied to ``mirror`` (default 100);
- ``override``: ``{roles: [...]}``, who may pick a target with the
  ``x-mlgate-override-target`` header (default ``admin``, ``odahu_admin``; ``[]``: nobody);
- ``analysis``: the automatic canary analysis (``deploy.control.analysis``): a rollout that
  moves the weights between the route's two targets by itself. It is stored as the user wrote
  it. ODAHU clients (``odahuflowctl``) drop spec fields they do not know, and a ModelRoute has
  no annotations to carry it in, so a ``PUT`` without ``analysis`` keeps the stored one
  (:func:`keep_analysis`); ``analysis: null`` removes it.
"""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deploy.control.analysis import AnalysisError, AnalysisSpec, parse_analysis
from deploy.control.resource import ValidationError, parse_header
from gateway import DEFAULT_OVERRIDE_ROLES, StickyKey, TrafficRoute, WeightedTarget

ROUTE_VALIDATION = "Validation of model route is failed"
CUSTOM_PREFIX = "/custom/"
URL_PREFIX_PATTERN = re.compile(r"^/custom(/[A-Za-z0-9._~-]+)+$")
MAX_WEIGHT = 100
SPEC_FIELDS = ("urlPrefix", "modelDeployments", "mirror", "mirrorPercentage", "sticky",
               "override", "analysis")
STICKY_SOURCES = {"header": "header", "cookie": "cookie", "jwtClaim": "claim"}
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,256}$")

ROUTE_READY = "Ready"
ROUTE_PROCESSING = "Processing"
ROUTE_FAILED = "Failed"


@dataclass
class ModelDeploymentTarget:
    md_name: str
    weight: int = MAX_WEIGHT

    def to_dict(self) -> dict[str, Any]:
        return {"mdName": self.md_name, "weight": self.weight}


@dataclass(frozen=True)
class StickySpec:
    """``field`` is the spec's key (header, cookie, jwtClaim), ``name`` what it names."""

    field: str
    name: str

    def to_dict(self) -> dict[str, str]:
        return {self.field: self.name}


@dataclass
class ModelRouteSpec:
    url_prefix: str
    model_deployments: list[ModelDeploymentTarget]
    mirror: str | None = None
    mirror_percentage: float | None = None
    sticky: StickySpec | None = None
    override_roles: list[str] | None = None
    analysis: dict[str, Any] | None = None
    """``spec.analysis`` as the user wrote it (validated)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "urlPrefix": self.url_prefix,
            "modelDeployments": [t.to_dict() for t in self.model_deployments],
        }
        if self.mirror:
            out["mirror"] = self.mirror
        if self.mirror_percentage is not None:
            out["mirrorPercentage"] = self.mirror_percentage
        if self.sticky is not None:
            out["sticky"] = self.sticky.to_dict()
        if self.override_roles is not None:
            out["override"] = {"roles": list(self.override_roles)}
        if self.analysis is not None:
            out["analysis"] = copy.deepcopy(self.analysis)
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
    header = parse_header(data, "ModelRoute", "model route", "urlPrefix and modelDeployments")
    errors = header.errors
    route_id = header.id
    if data.get("default"):
        errors.append("unable to create default route: default routes belong to their "
                      "model deployment")
    raw = header.spec
    if raw is None:
        raise ValidationError(ROUTE_VALIDATION, errors)
    unknown = sorted(set(raw) - set(SPEC_FIELDS))
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
    percentage, percentage_errors = _parse_mirror_percentage(raw.get("mirrorPercentage"),
                                                             mirror)
    sticky, sticky_errors = _parse_sticky(raw.get("sticky"))
    roles, override_errors = _parse_override(raw.get("override"))
    errors += percentage_errors + sticky_errors + override_errors
    analysis = raw.get("analysis")
    if analysis is not None:
        try:
            parse_analysis(analysis, _target_names(raw.get("modelDeployments")))
        except AnalysisError as exc:
            errors += exc.messages()
    if errors:
        raise ValidationError(ROUTE_VALIDATION, errors)
    return ModelRoute(id=route_id, spec=ModelRouteSpec(
        raw["urlPrefix"], targets, mirror, percentage, sticky, roles,
        copy.deepcopy(analysis) if analysis is not None else None))


def _target_names(raw: Any) -> list[str]:
    if not isinstance(raw, list):
        return []
    return [item["mdName"] for item in raw
            if isinstance(item, dict) and isinstance(item.get("mdName"), str)]


def route_analysis(route: ModelRoute) -> AnalysisSpec | None:
    """The route's parsed ``spec.analysis`` (validated when it was written), or None."""
    if route.spec.analysis is None:
        return None
    return parse_analysis(route.spec.analysis, [t.md_name for t in route.spec.model_deployments])


def keep_analysis(data: Any, current: ModelRoute | None) -> Any:
    """A PUT body with the stored ``spec.analysis`` added when the body does not mention the
    field at all (an ODAHU client, which cannot send it); ``analysis: null`` is left alone
    and removes it."""
    if (current is None or current.spec.analysis is None or not isinstance(data, Mapping)
            or not isinstance(data.get("spec"), Mapping) or "analysis" in data["spec"]):
        return data
    return {**data, "spec": {**data["spec"], "analysis": copy.deepcopy(current.spec.analysis)}}


def _parse_mirror_percentage(raw: Any, mirror: Any) -> tuple[float | None, list[str]]:
    if raw is None:
        return None, []
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0 <= raw <= 100:
        return None, [f"mirrorPercentage must be a number from 0 to 100, got {raw!r}"]
    if not mirror:
        return None, ["mirrorPercentage needs a mirror: name the deployment that gets the copies"]
    return (int(raw) if float(raw).is_integer() else float(raw)), []


def _parse_sticky(raw: Any) -> tuple[StickySpec | None, list[str]]:
    if raw is None:
        return None, []
    choices = ", ".join(STICKY_SOURCES)
    if not isinstance(raw, dict) or not raw:
        return None, [f"sticky must be an object with one of {choices}, e.g. "
                      "{header: x-user-id}"]
    unknown = sorted(set(raw) - set(STICKY_SOURCES))
    if unknown:
        return None, [f"sticky: unknown field(s) {', '.join(map(str, unknown))}; "
                      f"use one of {choices}"]
    if len(raw) > 1:
        return None, [f"sticky: give exactly one of {choices}, got {', '.join(sorted(raw))}"]
    [(field_name, name)] = raw.items()
    if field_name == "jwtClaim":
        valid = isinstance(name, str) and 0 < len(name) <= 256 and name.isprintable()
    else:
        valid = isinstance(name, str) and bool(TOKEN_PATTERN.match(name))
    if not valid:
        what = "a JWT claim name" if field_name == "jwtClaim" else f"an HTTP {field_name} name"
        return None, [f"sticky.{field_name} must be {what}, got {name!r}"]
    return StickySpec(field_name, name), []


def _parse_override(raw: Any) -> tuple[list[str] | None, list[str]]:
    if raw is None:
        return None, []
    if not isinstance(raw, dict) or set(raw) != {"roles"}:
        return None, ["override must be an object with one field, roles (a list of role "
                      "names; [] lets nobody override)"]
    roles = raw["roles"]
    if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
        return None, [f"override.roles must be a list of role names, got {roles!r}"]
    return list(dict.fromkeys(roles)), []


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
    sticky = spec.get("sticky")
    override = spec.get("override")
    return ModelRoute(id=route_id, default=default,
                      spec=ModelRouteSpec(
                          spec["urlPrefix"], targets, spec.get("mirror"),
                          spec.get("mirrorPercentage"),
                          StickySpec(*next(iter(sticky.items()))) if sticky else None,
                          override["roles"] if override is not None else None,
                          spec.get("analysis")),
                      created_at=created_at, updated_at=updated_at)


def traffic_route(route: ModelRoute) -> TrafficRoute:
    """The route as the gateway serves it, mlgate's defaults filled in."""
    spec = route.spec
    percentage = spec.mirror_percentage
    return TrafficRoute(
        id=route.id, url_prefix=spec.url_prefix,
        targets=tuple(WeightedTarget(t.md_name, t.weight) for t in spec.model_deployments),
        mirror=spec.mirror or None,
        mirror_percent=100.0 if percentage is None else float(percentage),
        sticky=(StickyKey(STICKY_SOURCES[spec.sticky.field], spec.sticky.name)
                if spec.sticky is not None else None),
        override_roles=(frozenset(spec.override_roles) if spec.override_roles is not None
                        else DEFAULT_OVERRIDE_ROLES))
