"""The model's columns as plain data, so the rest of the predictor needs no MLflow import.

An MLflow signature names each input column and gives it a type (``double``,
``long``, ``string``, ...). :class:`Column` keeps just that; :func:`columns_from_schema`
reads it from an ``mlflow.types.Schema`` (duck-typed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# MLflow DataType names the predictor understands; anything else (arrays, objects,
# maps, "any") is carried as KIND_ANY and handed to the model unchecked.
SCALAR_KINDS = frozenset(
    {"boolean", "integer", "long", "float", "double", "string", "binary", "datetime"}
)
KIND_ANY = "any"


@dataclass(frozen=True)
class Column:
    """One input or output column of the model's signature."""

    name: str | None
    kind: str
    required: bool = True


def column_kind(mlflow_type: Any) -> str:
    """Map an MLflow ``DataType`` (or ``Array``/``Object``/...) to a predictor kind."""
    name = getattr(mlflow_type, "name", None)
    if isinstance(name, str) and name in SCALAR_KINDS:
        return name
    return KIND_ANY


def columns_from_schema(schema: Any) -> list[Column] | None:
    """Columns of a column-based MLflow ``Schema``; ``None`` for no schema or a tensor one."""
    if schema is None or schema.is_tensor_spec():
        return None
    return [
        Column(name=spec.name, kind=column_kind(spec.type), required=bool(spec.required))
        for spec in schema.inputs
    ]


def names(columns: Iterable[Column]) -> list[str]:
    """Column names, with unnamed columns numbered by position."""
    return [c.name if c.name is not None else str(i) for i, c in enumerate(columns)]
