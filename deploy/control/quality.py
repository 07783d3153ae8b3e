"""``spec.quality`` of a ModelDeployment: parsed and validated (pure), an mlgate extension.

::

    quality:
      task: regression            # regression | classification
      prediction: $.prediction    # JSONPath into the response body; one value per input row
      label: $.truthful           # JSONPath into the feedback JSON; one value, or one per row
      window: 1h                  # bucket width of the time series: whole minutes
      classes: [low, high]        # classification only, optional: labels outside are invalid

Every field is optional; what is left out is inferred (``feedback.spec``) and the
deployment's ``status.quality`` says which defaults were taken. The mapping is stored as
the user wrote it, so it comes back unchanged from the API.

ODAHU clients (``odahuflowctl``, its SDK) know only ODAHU's spec fields and drop the others
when they read or write a deployment, so the same mapping is also kept, as JSON, in the
annotation ``mlgate.io/quality``, which they carry through unchanged: a deployment read,
edited and written back with ``odahuflowctl`` keeps its quality spec, and one written with
``odahuflowctl`` can set it through the annotation alone. When both are given,
``spec.quality`` wins and the annotation is rewritten from it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from deploy.control.durations import parse_duration
from feedback import (
    CELL_SECONDS,
    FIELDS,
    TASKS,
    DeploymentInfo,
    PathError,
    QualitySpec,
    compile_path,
)

QUALITY_ANNOTATION = "mlgate.io/quality"
QUALITY_FIELDS = (*FIELDS, "classes")


def quality_errors(raw: Any) -> list[str]:
    """Every problem of a ``spec.quality`` mapping, one message per field."""
    if not isinstance(raw, Mapping):
        return [f"quality must be an object with {', '.join(QUALITY_FIELDS)}, got {raw!r}"]
    errors = []
    unknown = sorted(str(k) for k in raw if k not in QUALITY_FIELDS)
    if unknown:
        errors.append(f"unknown quality field(s): {', '.join(unknown)}; known: "
                      f"{', '.join(QUALITY_FIELDS)}")
    task = raw.get("task")
    if task is not None and task not in TASKS:
        errors.append(f"quality.task must be one of {', '.join(TASKS)}, got {task!r}")
    for name in ("prediction", "label"):
        if raw.get(name) is not None:
            try:
                compile_path(raw[name])
            except PathError as exc:
                errors.append(f"quality.{name} {exc}")
    if raw.get("window") is not None:
        try:
            window = parse_duration(raw["window"])
        except ValueError as exc:
            errors.append(f"quality.window {exc}")
        else:
            if window < CELL_SECONDS or window % CELL_SECONDS:
                errors.append("quality.window must be a whole number of minutes (1m, 15m, 1h, "
                              f"1d), got {raw['window']!r}")
    classes = raw.get("classes")
    if classes is not None:
        if task != "classification":
            errors.append("quality.classes needs task: classification")
        if not isinstance(classes, list) or not classes or not all(
                isinstance(c, str | int | bool) and not isinstance(c, float) for c in classes):
            errors.append("quality.classes must be a non-empty list of strings, integers or "
                          f"booleans, got {classes!r}")
        elif len({_class(c) for c in classes}) != len(classes):
            errors.append(f"quality.classes has duplicates: {classes!r}")
    return errors


def _class(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolve_quality(raw_spec: Mapping[str, Any],
                    annotations: Mapping[str, str]) -> tuple[dict[str, Any] | None, list[str]]:
    """The quality mapping a spec carries (``spec.quality``, else the annotation), or None,
    and every problem with it."""
    if raw_spec.get("quality") is not None:
        raw = raw_spec["quality"]
        where = "spec.quality"
    elif QUALITY_ANNOTATION in annotations:
        try:
            raw = yaml.safe_load(annotations[QUALITY_ANNOTATION])
        except yaml.YAMLError as exc:
            return None, [f"annotation {QUALITY_ANNOTATION} is not JSON or YAML: "
                          f"{str(exc).splitlines()[0]}"]
        where = f"annotation {QUALITY_ANNOTATION}"
    else:
        return None, []
    errors = quality_errors(raw)
    if errors and where != "spec.quality":
        errors = [f"{where}: {e}" for e in errors]
    return (dict(raw) if not errors else None), errors


def annotation_text(quality: Mapping[str, Any]) -> str:
    """The annotation mirroring ``spec.quality``: compact JSON, the user's key order."""
    return json.dumps(quality, separators=(",", ":"))


def quality_spec(quality: Mapping[str, Any] | None) -> QualitySpec | None:
    """The validated mapping as the live join reads it (``None``: no ``spec.quality``)."""
    if quality is None:
        return None
    return _spec(annotation_text(quality))


@functools.lru_cache(maxsize=256)
def _spec(text: str) -> QualitySpec:
    raw = json.loads(text)
    classes = raw.get("classes")
    window = raw.get("window")
    return QualitySpec(
        task=raw.get("task"), prediction=raw.get("prediction"), label=raw.get("label"),
        window=int(parse_duration(window)) if window is not None else QualitySpec.window,
        classes=tuple(_class(c) for c in classes) if classes is not None else None,
        defaults=tuple(f for f in FIELDS if raw.get(f) is None), configured=True)


def deployment_infos(deployments: Sequence[Any]) -> list[DeploymentInfo]:
    """What the live join needs of each stored ``ModelDeployment``."""
    return [DeploymentInfo(d.id, d.status.model_name, d.status.model_version,
                           quality_spec(d.spec.quality)) for d in deployments]
