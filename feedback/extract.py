"""Predictions out of a logged answer, labels out of a feedback document (pure).

A prediction is one value per input row: a list (one row each), or a single value for a
one-row request; a one-element list around a value (``[[5.7]]``) counts as the value. A
regression value is a finite number; a class is a string, an integer (or a float that is
one: ``1.0`` is class ``1``) or a boolean, compared by :func:`class_key`.

A label is one value, or a list of one value per predicted row. What is wrong with a label
is its *reason*, counted per deployment and never an error of the feedback request:

=================  ============================================================
``missing``        the label path matches nothing in the feedback
``ambiguous``      no ``label`` given and the feedback has none or several candidates
``not_a_number``   a regression label that is not a finite number
``not_a_class``    a classification label that is not a string, integer or boolean
``unknown_class``  a class outside ``spec.quality.classes``
``row_count``      not one label per predicted row
=================  ============================================================
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from .paths import MISSING, compile_path
from .spec import INFERRED_PREDICTIONS, REGRESSION, QualitySpec

MISSING_LABEL = "missing"
AMBIGUOUS = "ambiguous"
NOT_A_NUMBER = "not_a_number"
NOT_A_CLASS = "not_a_class"
UNKNOWN_CLASS = "unknown_class"
ROW_COUNT = "row_count"
PREDICTION_UNREADABLE = "prediction_unreadable"
"""A label for a prediction whose values could not be read (counted like a bad label)."""
LABEL_REASONS = (MISSING_LABEL, AMBIGUOUS, NOT_A_NUMBER, NOT_A_CLASS, UNKNOWN_CLASS, ROW_COUNT,
                 PREDICTION_UNREADABLE)

Values = tuple[float, ...] | tuple[str, ...]

_INFERRED_PATHS = tuple(compile_path(p) for p in INFERRED_PREDICTIONS)
_SINGLE_OUTPUT = _INFERRED_PATHS[-1]  # $.outputs[0].data: KServe v2 / Triton


def is_number(value: Any) -> bool:
    kind = type(value)
    return kind is int or (kind is float and math.isfinite(value)) or (
        isinstance(value, int | float) and not isinstance(value, bool)
        and math.isfinite(value))


def class_key(value: Any) -> str | None:
    """The class a value names, as text (``1``, ``1.0`` -> ``"1"``; ``True`` -> ``"true"``),
    or ``None`` when it names none (lists, objects, null, fractional numbers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return None


def _rows(value: Any) -> list[Any]:
    rows = value if isinstance(value, list) else [value]
    return [r[0] if isinstance(r, list) and len(r) == 1 else r for r in rows]


def inferred_prediction(doc: Any) -> tuple[str, Any]:
    """``(path, value)`` of the prediction an answer holds when ``spec.quality.prediction``
    is not set (``INFERRED_PREDICTIONS``; the ``outputs`` one only when there is exactly one
    output), or ``("", MISSING)``."""
    for candidate in _INFERRED_PATHS:
        found = candidate.find(doc)
        if found is not MISSING and (candidate is not _SINGLE_OUTPUT or len(doc["outputs"]) == 1):
            return candidate.text, found
    return "", MISSING


def read_prediction(content: Any, spec: QualitySpec) -> tuple[Values | None, str, str]:
    """``(values, path, problem)`` from a logged ``response_content``: values ``None`` when
    unreadable (``problem`` says why; ``path`` is the JSONPath used or tried)."""
    try:
        doc = orjson.loads(content) if isinstance(content, str | bytes) else content
    except orjson.JSONDecodeError:
        return None, spec.prediction or "", "the answer is not JSON"
    if spec.prediction_path is not None:
        path, found = spec.prediction, spec.prediction_path.find(doc)
    else:
        path, found = inferred_prediction(doc)
        if found is MISSING:
            return None, "", "the answer has no prediction or single output (set " \
                             "spec.quality.prediction)"
    if found is MISSING:
        return None, path, f"{path} matches nothing in the answer"
    rows = _rows(found)
    if not rows:
        return None, path, "the prediction is empty"
    task = spec.task or REGRESSION
    if task == REGRESSION:
        if not all(is_number(r) for r in rows):
            hint = "" if spec.task else " (set spec.quality.task: classification for classes)"
            return None, path, f"the predictions at {path} are not numbers{hint}"
        return tuple(float(r) for r in rows), path, ""
    classes = [class_key(r) for r in rows]
    if any(c is None for c in classes):
        return None, path, f"the predictions at {path} are not classes"
    return tuple(classes), path, ""  # type: ignore[arg-type]


def _numbers(value: Any) -> bool:
    return is_number(value) or (isinstance(value, list) and bool(value)
                                and all(is_number(v) for v in _rows(value)))


def _classes(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_classes(v) for v in _rows(value))
    return isinstance(value, str | bool) or (isinstance(value, int))


def _inferred_label(payload: Any, task: str) -> tuple[Any, str]:
    """``(value, "$.field")`` of the one candidate (a number, or a list of numbers, for a
    regression; a class or a list of classes for a classification), or ``(MISSING, "")``."""
    fits = _numbers if task == REGRESSION else _classes
    if fits(payload):
        return payload, "$"
    found = [(k, v) for k, v in payload.items() if fits(v)] if isinstance(payload, dict) else []
    if len(found) != 1:
        return MISSING, ""
    name, value = found[0]
    return value, f"$.{name}" if name.isidentifier() else f"$['{name}']"


def read_label(payload: Any, rows: int, spec: QualitySpec) -> tuple[Values | None, str, str]:
    """``(labels, path, reason)``: one label per predicted row, or ``None`` and the reason."""
    task = spec.task or REGRESSION
    if spec.label_path is not None:
        path, value = spec.label, spec.label_path.find(payload)
        if value is MISSING:
            return None, path, MISSING_LABEL
    else:
        value, path = _inferred_label(payload, task)
        if value is MISSING:
            return None, "", AMBIGUOUS
    labels = _rows(value) if isinstance(value, list) else [value]
    if len(labels) != rows:
        return None, path, ROW_COUNT
    if task == REGRESSION:
        if not all(is_number(v) for v in labels):
            return None, path, NOT_A_NUMBER
        return tuple(float(v) for v in labels), path, ""
    keys = [class_key(v) for v in labels]
    if any(k is None for k in keys):
        return None, path, NOT_A_CLASS
    if spec.classes is not None and any(k not in spec.classes for k in keys):
        return None, path, UNKNOWN_CLASS
    return tuple(keys), path, ""  # type: ignore[arg-type]
