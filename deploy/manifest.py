"""Reading ModelDeployment manifests from YAML files (one or several documents per file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .models import ModelDeployment, ValidationError, parse_deployment

FILE_SCHEME = "file://"


class ManifestError(ValueError):
    """A manifest file cannot be used; the message names the file and document."""


def resolve_image(image: str, base_dir: Path) -> str:
    """Make a ``file://`` or plain-path image absolute, relative to the manifest's directory.

    ``file://./models/wine-v1`` and ``models/wine-v1`` become ``file:///abs/models/wine-v1``;
    anything with another scheme (a container image, ``models:/...``) is kept as written.
    """
    if image.startswith(FILE_SCHEME):
        path = image[len(FILE_SCHEME):]
    elif "://" in image or image.startswith("models:/"):
        return image
    elif image.startswith(("/", ".")):
        path = image
    else:
        return image
    resolved = (base_dir / path).resolve() if not path.startswith("/") else Path(path)
    return FILE_SCHEME + str(resolved)


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
