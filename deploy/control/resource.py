"""What every mlgate resource shares: the id rule, the validation error, and the header.

ModelDeployment, ModelRoute and InferenceJob documents all look like ODAHU's:
``{"kind": ..., "id": ... (or metadata.name), "spec": {...}}``. :func:`parse_header`
reads that envelope once for all of them, collecting problems instead of stopping at
the first, so the API can answer one 400 naming every broken field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ID_PATTERN = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
ID_RULE = ("must contain at most 63 characters, only lowercase alphanumeric characters or '-', "
           "start with an alphabetic character and end with an alphanumeric character")


class ValidationError(ValueError):
    """Invalid object; ``errors`` lists each problem, ``str()`` is the API message."""

    def __init__(self, prefix: str, errors: list[str]) -> None:
        super().__init__(f"{prefix}: {'; '.join(errors)}")
        self.errors = errors


def utcnow() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate_id(value: Any) -> list[str]:
    if not isinstance(value, str) or value == "":
        return ['empty "ID"']
    if not ID_PATTERN.match(value):
        return [f"ID is not valid: {value!r} {ID_RULE}"]
    return []


@dataclass(frozen=True, slots=True)
class Header:
    """A document's envelope: its id (``None`` when invalid), its raw ``spec`` (``None`` when
    not an object) and every problem found in them."""

    id: str | None
    spec: dict[str, Any] | None
    errors: list[str]


def parse_header(data: Any, kind: str, what: str, spec_hint: str) -> Header:
    """Read ``kind``, ``id`` (or ``metadata.name``) and ``spec`` of a ``kind`` document.

    ``what`` names the resource in messages (``model route``); ``spec_hint`` says what the
    spec must hold (``urlPrefix and modelDeployments``).
    """
    if not isinstance(data, dict):
        return Header(None, None, [f"the {what} must be an object"])
    errors: list[str] = []
    given = data.get("kind")
    if given is not None and given != kind:
        errors.append(f"kind must be {kind}, got {given!r}")
    res_id = data.get("id")
    if res_id is None and isinstance(data.get("metadata"), dict):
        res_id = data["metadata"].get("name")
    id_errors = validate_id(res_id)
    errors += id_errors
    spec = data.get("spec")
    if not isinstance(spec, dict):
        errors.append(f"spec must be an object with {spec_hint}")
        spec = None
    return Header(None if id_errors else res_id, spec, errors)
