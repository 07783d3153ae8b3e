"""The quality figures, as pure functions of joined (prediction, label) pairs.

Regression: ``count``, ``mae`` (mean absolute error), ``rmse``, ``bias`` (mean of
prediction minus label: positive when the model predicts too high). Classification:
``count``, ``accuracy`` and per class ``precision``, ``recall``, ``f1`` and ``support``
(labels of that class), with scikit-learn's ``zero_division=0`` convention (a class never
predicted has precision 0). A figure with nothing to average is ``None``.

Sums are exact (``math.fsum``), so the figures do not depend on the order the pairs came in:
the live join and a rebuild from storage answer the same numbers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from statistics import median as _median
from typing import Any

Confusion = Mapping[tuple[str, str], int]
"""``(label, predicted class)`` -> rows."""


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def regression(residuals: Sequence[float]) -> dict[str, Any]:
    """Figures from ``prediction - label`` per labelled row."""
    n = len(residuals)
    if n == 0:
        return {"count": 0, "mae": None, "rmse": None, "bias": None}
    return {"count": n,
            "mae": _round(math.fsum(abs(r) for r in residuals) / n),
            "rmse": _round(math.sqrt(math.fsum(r * r for r in residuals) / n)),
            "bias": _round(math.fsum(residuals) / n)}


def classification(confusion: Confusion) -> dict[str, Any]:
    """Figures from the counts of (label, predicted class) over labelled rows."""
    n = sum(confusion.values())
    if n == 0:
        return {"count": 0, "accuracy": None, "classes": {}}
    right = sum(c for (label, pred), c in confusion.items() if label == pred)
    support: Counter[str] = Counter()
    predicted: Counter[str] = Counter()
    for (label, pred), c in confusion.items():
        support[label] += c
        predicted[pred] += c
    classes = {}
    for name in sorted(set(support) | set(predicted)):
        hit = confusion.get((name, name), 0)
        precision = hit / predicted[name] if predicted[name] else 0.0
        recall = hit / support[name] if support[name] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        classes[name] = {"precision": _round(precision), "recall": _round(recall),
                         "f1": _round(f1), "support": support[name]}
    return {"count": n, "accuracy": _round(right / n), "classes": classes}


def pairs(predictions: Iterable[Any], labels: Iterable[Any], task: str) -> dict[str, Any]:
    """The figures of ``task`` over pairs given as two aligned sequences."""
    joined = list(zip(predictions, labels, strict=True))
    if task == "regression":
        return regression([float(p) - float(label) for p, label in joined])
    return classification(Counter((str(label), str(p)) for p, label in joined))


def median(values: Iterable[float]) -> float | None:
    data = list(values)
    return _round(float(_median(data)), 3) if data else None
