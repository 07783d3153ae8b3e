"""Reading ModelDeployment manifests from YAML files (one or several documents per file)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from deploy.control.deployments import ModelDeployment, parse_deployment
from deploy.control.images import resolve_image
from deploy.control.resource import ValidationError


class ManifestError(ValueError):
    """A manifest file cannot be used; the message names the file and document."""


def load_documents(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path} is not valid YAML: {exc}") from exc
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise ManifestError(f"{path} document {i + 1}: expected a mapping with kind, id, spec")
    return docs


def load_deployments(path: str | Path) -> list[ModelDeployment]:
    """Every ``kind: ModelDeployment`` document in the file, validated, images resolved."""
    path = Path(path)
    out = []
    for i, doc in enumerate(load_documents(path)):
        if doc.get("kind") not in (None, "ModelDeployment"):
            continue
        try:
            dep = parse_deployment(doc)
        except ValidationError as exc:
            raise ManifestError(f"{path} document {i + 1}: {exc}") from exc
        dep.spec.image = resolve_image(dep.spec.image, path.resolve().parent)
        out.append(dep)
    return out


def load_deployment_files(files: Sequence[str | Path]) -> list[ModelDeployment]:
    """The deployments of every file (``mlgate up -f``), refusing an id defined twice."""
    deployments: list[ModelDeployment] = []
    seen: set[str] = set()
    for path in files:
        for dep in load_deployments(path):
            if dep.id in seen:
                raise ManifestError(f"{path}: deployment {dep.id!r} is defined twice")
            seen.add(dep.id)
            deployments.append(dep)
    return deployments
