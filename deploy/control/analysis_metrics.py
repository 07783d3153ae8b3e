"""The metrics of ``spec.analysis``: names, bounds and their validation (pure).

What each field means is in ``analysis.py``; how each metric is judged in ``judge.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_CONFIDENCE = 0.95
ERROR_RATE = "error-rate"
LATENCY_PERCENTILES = {"latency-p50": 50, "latency-p90": 90, "latency-p95": 95, "latency-p99": 99}
QUALITY = "quality"
METRIC_NAMES = (ERROR_RATE, *LATENCY_PERCENTILES, QUALITY)
QUALITY_METRICS = ("mae", "accuracy")
REFUSED_QUALITY_METRICS = {
    "rmse": "rmse is not judgeable per prediction: a rank test of squared errors is the same "
    "test as of absolute errors; use metric: mae",
    "bias": "bias is not judgeable: it is signed, so neither side is worse, and the judge gets "
    "absolute errors; use metric: mae",
}

METRIC_FIELDS = ("name", "metric", "max", "maxIncrease", "confidence")


@dataclass(frozen=True)
class MetricSpec:
    """One judged metric. ``label`` names it in verdicts and metrics (``quality-mae``)."""

    name: str
    max: float | None = None
    max_increase: float | None = None
    confidence: float = DEFAULT_CONFIDENCE
    metric: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}-{self.metric}" if self.metric else self.name

    @property
    def allowed_increase(self) -> float | None:
        """``maxIncrease`` with the default applied: 0 when no bound was given at all."""
        if self.max_increase is None and self.max is None:
            return 0.0
        return self.max_increase

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.metric is not None:
            out["metric"] = self.metric
        if self.max is not None:
            out["max"] = self.max
        if self.max_increase is not None:
            out["maxIncrease"] = self.max_increase
        out["confidence"] = self.confidence
        return out


def parse_metrics(value: Any, where: str, errors: list[tuple[str, str]]) -> tuple[MetricSpec, ...]:
    if not isinstance(value, list) or not value:
        errors.append((where, "must list at least one metric, e.g. {name: error-rate, max: 1}"))
        return ()
    metrics: list[MetricSpec] = []
    for i, item in enumerate(value):
        metric = _parse_metric(item, f"{where}[{i}]", errors)
        if metric is None:
            continue
        if any(m.label == metric.label for m in metrics):
            errors.append((f"{where}[{i}]", f"{metric.label} is listed twice"))
        metrics.append(metric)
    return tuple(metrics)


def _parse_metric(item: Any, where: str, errors: list[tuple[str, str]]) -> MetricSpec | None:
    if not isinstance(item, dict):
        errors.append((where, "must be an object such as {name: latency-p99, maxIncrease: 20}"))
        return None
    before = len(errors)
    errors += [
        (f"{where}.{key}", "unknown field; known: " + ", ".join(METRIC_FIELDS))
        for key in item
        if key not in METRIC_FIELDS
    ]
    name = item.get("name")
    if name not in METRIC_NAMES:
        errors.append(
            (f"{where}.name", f"unknown metric {name!r}; known: " + ", ".join(METRIC_NAMES))
        )
    quality_metric = item.get("metric")
    if name == QUALITY and str(quality_metric) in REFUSED_QUALITY_METRICS:
        errors.append((f"{where}.metric", REFUSED_QUALITY_METRICS[str(quality_metric)]))
    elif name == QUALITY and quality_metric not in QUALITY_METRICS:
        errors.append(
            (
                f"{where}.metric",
                f"must be one of {', '.join(QUALITY_METRICS)} for "
                f"name: quality, got {quality_metric!r}",
            )
        )
    elif name != QUALITY and quality_metric is not None:
        errors.append((f"{where}.metric", "only a quality metric takes metric"))
    percent = name == ERROR_RATE or quality_metric == "accuracy"
    ceiling = _number(item, "max", where, errors, upper=100.0 if percent else None)
    increase = _number(item, "maxIncrease", where, errors)
    confidence = item.get("confidence", DEFAULT_CONFIDENCE)
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not 0.5 <= confidence < 1
    ):
        errors.append(
            (f"{where}.confidence", f"must be a number from 0.5 to below 1, got {confidence!r}")
        )
    if len(errors) > before:
        return None
    return MetricSpec(
        name=name,
        max=ceiling,
        max_increase=increase,
        confidence=float(confidence),
        metric=quality_metric,
    )


def _number(
    item: dict[str, Any],
    key: str,
    where: str,
    errors: list[tuple[str, str]],
    upper: float | None = None,
) -> float | None:
    value = item.get(key)
    if value is None:
        return None
    valid = (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and value >= 0
        and value != float("inf")
        and (upper is None or value <= upper)
    )
    if not valid:
        span = f"from 0 to {upper:g}" if upper is not None else "of at least 0"
        errors.append((f"{where}.{key}", f"must be a number {span}, got {value!r}"))
        return None
    return float(value)
