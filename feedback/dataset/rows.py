"""One record's part of a data set row, as plain functions (pure): what the Spark engine calls
per record, with the same meaning as the DuckDB engine's SQL (``feedback.dataset.duck``).

- :func:`prediction_rows`: the prediction of each input row, typed (a number, or a class as
  text), ``None`` where a row's value is neither;
- :func:`feature_rows`: each input row's features as ``{name: text}`` (a JSON string's text,
  else the JSON value as written), :func:`feature_names` and :func:`feature_types` (each
  feature's JSON types);
- :func:`label_rows`: the live join's label per row (:func:`feedback.extract.read_label`).
"""

from __future__ import annotations

import json
from typing import Any

from ..extract import class_key, inferred_prediction, is_number, read_label
from ..paths import MISSING, compile_path
from ..spec import REGRESSION, QualitySpec


def json_type(value: Any) -> str:
    """DuckDB's name of a JSON value's type (``json_type``)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "BIGINT" if value < 2**63 else "UBIGINT"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, str):
        return "VARCHAR"
    return "ARRAY" if isinstance(value, list) else "OBJECT"


def _value(value: Any, task: str) -> Any:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if task == REGRESSION:
        return float(value) if is_number(value) else None
    return class_key(value)


def _load(content: str | None) -> Any:
    """The JSON document of a logged body, or MISSING."""
    if not content:
        return MISSING
    try:
        return json.loads(content)
    except ValueError:
        return MISSING


def prediction_rows(content: str | None, prediction: str | None, task: str) -> list[Any] | None:
    """The typed prediction per input row, or None when the answer holds no prediction."""
    doc = _load(content)
    if doc is MISSING:
        return None
    if prediction is None:
        found = inferred_prediction(doc)[1]
    else:
        found = compile_path(prediction).find(doc)
    if found is MISSING or found is None:
        return None
    rows = found if isinstance(found, list) else [found]
    return [_value(v, task) for v in rows]


def _features(content: str | None) -> tuple[list[str], list[Any]] | None:
    doc = _load(content)
    if not isinstance(doc, dict):
        return None
    split = doc.get("dataframe_split") if isinstance(doc.get("dataframe_split"), dict) else {}
    cols = doc.get("columns") if "columns" in doc else split.get("columns")
    data = doc.get("data") if "data" in doc else split.get("data")
    if not isinstance(cols, list) or not isinstance(data, list):
        return None
    return [str(c) for c in cols], data


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def feature_rows(content: str | None) -> list[dict[str, str | None]] | None:
    """Each input row's features by name, as text."""
    found = _features(content)
    if found is None:
        return None
    cols, data = found
    return [{name: _text(row[i]) if isinstance(row, list) and i < len(row) else None
             for i, name in enumerate(cols)} for row in data]


def feature_names(content: str | None) -> list[str] | None:
    """The request's feature names, in its order."""
    found = _features(content)
    return found[0] if found is not None else None


def feature_types(content: str | None) -> dict[str, list[str]]:
    """Each feature's JSON types over the request's rows (nulls left out)."""
    found = _features(content)
    if found is None:
        return {}
    cols, data = found
    out: dict[str, set[str]] = {name: set() for name in cols}
    for row in data:
        if not isinstance(row, list):
            continue
        for i, name in enumerate(cols):
            if i < len(row) and row[i] is not None:
                out[name].add(json_type(row[i]))
    return {name: sorted(kinds) for name, kinds in out.items()}


def label_rows(payload: str | None, rows: int | None, task: str,
               label: str | None) -> list[Any] | None:
    """The label per predicted row (the live join's reading), or None."""
    if payload is None or rows is None:
        return None
    values, _path, _reason = read_label(json.loads(payload), rows,
                                        QualitySpec(task=task, label=label))
    return list(values) if values is not None else None
