"""ModelDeployment and ModelRoute: ODAHU v1 shapes, defaults and validation — pure functions.

``parse_deployment`` turns a JSON/YAML mapping into a ``ModelDeployment`` with
ODAHU's defaults applied, collecting every problem instead of stopping at the
first, so the API can answer one 400 naming all broken fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from deploy.control.autoscaler import annotation_errors
from deploy.control.protection import ANNOTATIONS as PROTECTION_ANNOTATIONS
from deploy.control.protection import protection_errors
from deploy.control.quality import QUALITY_ANNOTATION, annotation_text, resolve_quality
from deploy.control.quantity import parse_quantity
from deploy.control.resource import (
    ValidationError,
    parse_header,
)

PREDICTORS = ("odahu-ml-server", "triton")
DEPLOYMENT_VALIDATION = "Validation of model deployment is failed"

DEFAULT_REQUESTS = {"cpu": "125m", "memory": "128Mi"}
DEFAULT_LIMITS = {"cpu": "250m", "memory": "256Mi"}
DEFAULT_PROBE_DELAY = 2

STATE_PROCESSING = "Processing"
STATE_READY = "Ready"
STATE_FAILED = "Failed"
STATE_DELETING = "Deleting"


@dataclass
class ResourceList:
    cpu: str | None = None
    memory: str | None = None
    gpu: str | None = None

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class ResourceRequirements:
    requests: ResourceList = field(default_factory=lambda: ResourceList(**DEFAULT_REQUESTS))
    limits: ResourceList = field(default_factory=lambda: ResourceList(**DEFAULT_LIMITS))

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests.to_dict(), "limits": self.limits.to_dict()}


@dataclass
class ModelDeploymentSpec:
    image: str
    predictor: str
    resources: ResourceRequirements = field(default_factory=ResourceRequirements)
    min_replicas: int = 0
    max_replicas: int = 1
    image_pull_conn_id: str | None = None
    role_name: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    liveness_probe_initial_delay: int = DEFAULT_PROBE_DELAY
    readiness_probe_initial_delay: int = DEFAULT_PROBE_DELAY
    quality: dict[str, Any] | None = None
    """mlgate's ``spec.quality`` as the user wrote it (``deploy.control.quality``)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "image": self.image,
            "predictor": self.predictor,
            "resources": self.resources.to_dict(),
            "minReplicas": self.min_replicas,
            "maxReplicas": self.max_replicas,
            "roleName": self.role_name,
            "annotations": dict(self.annotations),
            "nodeSelector": dict(self.node_selector),
            "livenessProbeInitialDelay": self.liveness_probe_initial_delay,
            "readinessProbeInitialDelay": self.readiness_probe_initial_delay,
        }
        if self.image_pull_conn_id:
            out["imagePullConnID"] = self.image_pull_conn_id
        if self.quality is not None:
            out["quality"] = dict(self.quality)
        return out


@dataclass
class ModelDeploymentStatus:
    state: str = STATE_PROCESSING
    replicas: int = 0
    available_replicas: int = 0
    model_name: str = ""
    model_version: str = ""
    reason: str = ""
    last_updated_time: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "state": self.state,
            "replicas": self.replicas,
            "availableReplicas": self.available_replicas,
            "modelName": self.model_name,
            "modelVersion": self.model_version,
            "lastUpdatedTime": self.last_updated_time,
        }
        if self.reason:
            out["reason"] = self.reason
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelDeploymentStatus:
        return cls(state=data.get("state") or STATE_PROCESSING,
                   replicas=int(data.get("replicas") or 0),
                   available_replicas=int(data.get("availableReplicas") or 0),
                   model_name=data.get("modelName") or "",
                   model_version=data.get("modelVersion") or "",
                   reason=data.get("reason") or "",
                   last_updated_time=data.get("lastUpdatedTime") or "")


@dataclass
class ModelDeployment:
    id: str
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    created_at: str = ""
    updated_at: str = ""
    generation: int = 0
    """Bumped by every spec change; a status computed for an older spec is not stored."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "spec": self.spec.to_dict(),
            "status": self.status.to_dict(),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


def parse_deployment(data: Any) -> ModelDeployment:
    """Validate and default a ModelDeployment mapping; ``ValidationError`` lists every problem."""
    header = parse_header(data, "ModelDeployment", "model deployment", "image and predictor")
    errors = header.errors
    if header.spec is None:
        raise ValidationError(DEPLOYMENT_VALIDATION, errors)
    dep_id = header.id
    spec_raw = header.spec
    spec, spec_errors = _parse_spec(spec_raw, dep_id or "")
    errors += spec_errors
    if errors:
        raise ValidationError(DEPLOYMENT_VALIDATION, errors)
    assert spec is not None and dep_id is not None
    return ModelDeployment(id=dep_id, spec=spec)


def _parse_spec(raw: dict[str, Any], dep_id: str) -> tuple[ModelDeploymentSpec | None, list[str]]:
    errors: list[str] = []
    known = {"image", "predictor", "resources", "minReplicas", "maxReplicas", "imagePullConnID",
             "roleName", "annotations", "nodeSelector", "livenessProbeInitialDelay",
             "readinessProbeInitialDelay", "quality"}
    unknown = sorted(set(raw) - known)
    if unknown:
        errors.append(f"unknown spec field(s): {', '.join(unknown)}")
    image = raw.get("image")
    if not isinstance(image, str) or not image.strip():
        errors.append("empty image parameter")
    predictor = raw.get("predictor")
    if predictor in (None, ""):
        errors.append("empty predictor parameter")
    elif predictor not in PREDICTORS:
        errors.append(f"predictor {predictor!r} is not supported; use one of "
                      f"{', '.join(PREDICTORS)}")
    min_replicas = _int_field(raw, "minReplicas", 0, errors)
    if min_replicas is not None and min_replicas < 0:
        errors.append("minimum number of replicas parameter must not be less than 0")
    max_default = max(1, min_replicas or 0)
    max_replicas = _int_field(raw, "maxReplicas", max_default, errors)
    if max_replicas is not None and max_replicas < 1:
        errors.append("maximum number of replicas parameter must not be less than 1")
    if min_replicas is not None and max_replicas is not None and max_replicas < min_replicas:
        errors.append("maximum number of replicas parameter must not be less than minimum "
                      "number of replicas parameter")
    liveness = _int_field(raw, "livenessProbeInitialDelay", DEFAULT_PROBE_DELAY, errors)
    if liveness is not None and liveness < 0:
        errors.append("livenessProbeInitialDelay must be non-negative integer")
    readiness = _int_field(raw, "readinessProbeInitialDelay", DEFAULT_PROBE_DELAY, errors)
    if readiness is not None and readiness < 0:
        errors.append("readinessProbeInitialDelay must be non-negative integer")
    resources = _parse_resources(raw.get("resources"), errors)
    annotations = _str_map(raw, "annotations", errors)
    errors += annotation_errors({k: v for k, v in annotations.items()
                                 if k != QUALITY_ANNOTATION},
                                PROTECTION_ANNOTATIONS | {QUALITY_ANNOTATION})
    errors += protection_errors(annotations)
    quality, quality_problems = resolve_quality(raw, annotations)
    errors += quality_problems
    if quality is not None:
        annotations[QUALITY_ANNOTATION] = annotation_text(quality)
    node_selector = _str_map(raw, "nodeSelector", errors)
    role_name = raw.get("roleName") or f"role-{dep_id}"
    if not isinstance(role_name, str):
        errors.append("roleName must be a string")
    pull = raw.get("imagePullConnID")
    if pull is not None and not isinstance(pull, str):
        errors.append("imagePullConnID must be a string")
    if errors:
        return None, errors
    return ModelDeploymentSpec(
        image=image.strip(), predictor=predictor, resources=resources,
        min_replicas=min_replicas, max_replicas=max_replicas, image_pull_conn_id=pull or None,
        role_name=role_name, annotations=annotations, node_selector=node_selector,
        liveness_probe_initial_delay=liveness, readiness_probe_initial_delay=readiness,
        quality=quality,
    ), []


def _int_field(raw: dict[str, Any], name: str, default: int, errors: list[str]) -> int | None:
    value = raw.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(f"{name} must be an integer, got {value!r}")
        return None
    return value


def _str_map(raw: dict[str, Any], name: str, errors: list[str]) -> dict[str, str]:
    value = raw.get(name) or {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        errors.append(f"{name} must be a map of strings")
        return {}
    return {k: str(v) for k, v in value.items()}


def _parse_resources(raw: Any, errors: list[str]) -> ResourceRequirements:
    result = ResourceRequirements()
    if raw is None:
        return result
    if not isinstance(raw, dict):
        errors.append("resources must be an object with requests and limits")
        return result
    unknown = sorted(set(raw) - {"requests", "limits"})
    if unknown:
        errors.append(f"unknown resources field(s): {', '.join(unknown)}")
    for part, defaults in (("requests", DEFAULT_REQUESTS), ("limits", DEFAULT_LIMITS)):
        section = raw.get(part)
        if section is None:
            continue
        if not isinstance(section, dict):
            errors.append(f"resources.{part} must be an object")
            continue
        bad = sorted(set(section) - {"cpu", "memory", "gpu"})
        if bad:
            errors.append(f"unknown resources.{part} field(s): {', '.join(bad)}")
        values: dict[str, str | None] = dict(defaults)
        for key in ("cpu", "memory", "gpu"):
            if section.get(key) is None:
                continue
            try:
                parse_quantity(section[key])
            except ValueError as exc:
                errors.append(f"resources.{part}.{key}: {exc}")
                continue
            values[key] = str(section[key])
        setattr(result, part, ResourceList(**values))
    return result
