"""Reading the live join: a deployment's figures over time, a canary's samples (pure).

Spans are in prediction time and resolved to whole minutes: a minute counts when it starts
within ``[since, until)``. Times are epoch seconds, UTC.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import figures
from .extract import LABEL_REASONS
from .index import ANY_ROUTE, Cell, QualityIndex, Seen
from .spec import (
    CELL_SECONDS,
    CLASS_LABEL_INFERRED,
    CLASSIFICATION,
    LABEL_INFERRED,
    REGRESSION,
    QualitySpec,
    window_text,
)

MAX_BUCKETS = 10_000
CONFIGURED = "configured"
INFERRED_STATE = "inferred"
NOT_CONFIGURED = "not configured"


class ReportError(ValueError):
    """The span or window asked for cannot be answered (the API answers 400)."""


@dataclass(frozen=True)
class VariantSamples:
    """One variant's data over a span: what the canary judge reads (``VariantData``)."""

    requests: int
    """Requests the deployment was asked to serve through this route."""
    errors: int
    """5xx answers among them, the model's and the gateway's own (502, 503, 504)."""
    latencies: tuple[float, ...]
    """Seconds the replica took to answer; a uniform sample (at most ``latency_samples`` per
    minute, chosen by a hash of the Request-ID)."""
    quality: tuple[float, ...]
    """One per labelled row: ``|prediction - label|`` (regression) or 1 wrong / 0 right
    (classification), with late labels credited to their prediction's minute."""
    task: str


def variant_samples(index: QualityIndex, deployment_id: str, since: datetime, until: datetime,
                    route_id: str | None = None) -> VariantSamples:
    """What ``deployment_id`` did for predictions made in ``[since, until)``.

    ``route_id``: only requests a ModelRoute sent it (its target's share of a canary);
    ``None``: every request, whichever route. For a rollout's ``WindowData``::

        data = VariantData(s.requests, s.errors, s.latencies, s.quality)
    """
    route = ANY_ROUTE if route_id is None else route_id
    task = index.spec(deployment_id).task or REGRESSION
    requests = errors = 0
    latencies: list[float] = []
    quality: list[float] = []
    for _minute, cell in index.cells_of(deployment_id, _epoch(since), _epoch(until), route):
        requests += cell.requests
        errors += cell.errors
        latencies += sorted(seconds for _h, seconds in cell.latency)
        if cell.residuals is not None:
            quality += sorted(abs(r) for r in cell.residuals.values())
        if cell.confusion is not None:
            for (label, predicted), rows in sorted(cell.confusion.items()):
                quality += [0.0 if label == predicted else 1.0] * rows
    return VariantSamples(requests, errors, tuple(latencies), tuple(quality), task)


def _epoch(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("since and until must carry a time zone")
    return int(when.timestamp())


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Sum:
    """Cells added up: what one bucket (or the totals) says."""

    def __init__(self) -> None:
        self.requests = self.errors = self.predictions = self.labelled = 0
        self.invalid: Counter[str] = Counter()
        self.residuals: list[float] = []
        self.confusion: Counter[tuple[str, str]] = Counter()
        self.delays: list[float] = []

    def add(self, cell: Cell) -> None:
        self.requests += cell.requests
        self.errors += cell.errors
        self.predictions += cell.predictions
        self.labelled += cell.labelled
        if cell.invalid:
            self.invalid.update(cell.invalid)
        if cell.residuals is not None:
            self.residuals.extend(cell.residuals.values())
        if cell.confusion:
            self.confusion.update(cell.confusion)
        self.delays.extend(cell.delays.values())

    def figures(self, task: str | None) -> dict[str, Any]:
        invalid = sum(self.invalid.values())
        out: dict[str, Any] = {
            "requests": self.requests, "errors": self.errors, "predictions": self.predictions,
            "labelled": self.labelled, "unlabelled": self.predictions - self.labelled - invalid,
            "invalid": {r: self.invalid[r] for r in LABEL_REASONS if self.invalid[r]},
        }
        if task == REGRESSION:
            out.update(figures.regression(self.residuals))
        elif task == CLASSIFICATION:
            out.update(figures.classification(self.confusion))
        out["median_label_delay_seconds"] = figures.median(self.delays)
        return out


def describe(spec: QualitySpec, seen: Seen | None) -> dict[str, Any]:
    """How a deployment's quality is measured: its spec, or what was inferred (``defaults``
    names the fields that were), or why it is not configured."""
    seen = seen or Seen()
    prediction = spec.prediction or _common(seen.predictions)
    task = spec.task or REGRESSION
    label = spec.label or _common(seen.labels) or (
        LABEL_INFERRED if task == REGRESSION else CLASS_LABEL_INFERRED)
    out: dict[str, Any] = {"state": CONFIGURED if spec.configured else INFERRED_STATE,
                           "task": task, "prediction": prediction, "label": label,
                           "window": window_text(spec.window), "defaults": list(spec.defaults)}
    if spec.classes is not None:
        out["classes"] = list(spec.classes)
    problem = _common(seen.problems)
    if not spec.configured and not seen.predictions:
        out = {"state": NOT_CONFIGURED, "window": window_text(spec.window),
               "reason": problem or "no prediction has been seen yet, so nothing could be "
                                    "inferred (or set spec.quality)"}
    elif problem:
        out["reason"] = f"{sum(seen.problems.values())} answer(s) without a readable " \
                        f"prediction: {problem}"
    return out


def _common(counts: Counter[str]) -> str | None:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ranked[0][0] if ranked else None


def figures_over(index: QualityIndex, dep: str, since: int, until: int, window: int,
                 route: Any = ANY_ROUTE, task: str | None = None) -> dict[str, Any]:
    """``{"totals": {...}, "series": [{"start", "end", ...}, ...]}`` of ``dep`` over
    ``[since, until)`` in buckets of ``window`` seconds aligned to the epoch."""
    if window < CELL_SECONDS or window % CELL_SECONDS:
        raise ReportError(f"window must be a whole number of minutes, got {window}s")
    if until <= since:
        raise ReportError("until must be after since")
    first = since - since % window
    count = -(-(until - first) // window)
    if count > MAX_BUCKETS:
        raise ReportError(f"{count} buckets of {window}s from since to until; at most "
                          f"{MAX_BUCKETS}: widen the window or narrow the span")
    buckets = [_Sum() for _ in range(count)]
    total = _Sum()
    for minute, cell in index.cells_of(dep, since, until, route):
        buckets[(minute - first) // window].add(cell)
        total.add(cell)
    series = []
    for i, bucket in enumerate(buckets):
        start = first + i * window
        series.append({"start": iso(start), "end": iso(start + window),
                       **bucket.figures(task)})
    return {"totals": total.figures(task), "series": series}


def quality_now(index: QualityIndex, dep: str, now: int, window: int) -> dict[str, Any] | None:
    """The figures over the last ``window`` seconds (the Prometheus gauges), or None."""
    total = _Sum()
    start = now - now % CELL_SECONDS - window + CELL_SECONDS
    for _minute, cell in index.cells_of(dep, start, now + 1):
        total.add(cell)
    return total.figures(index.spec(dep).task or REGRESSION)


def deployment_document(index: QualityIndex, dep: str, since: int, until: int,
                        window: int | None = None, route: Any = ANY_ROUTE) -> dict[str, Any]:
    """What ``GET .../deployment/{id}/quality`` answers (the API adds the model's name and
    version): how quality is measured, the totals over ``[since, until)`` and the series
    in buckets of ``window`` seconds (default: the spec's window)."""
    spec = index.spec(dep)
    quality = describe(spec, index.seen.get(dep))
    window = window or spec.window
    task = None if quality["state"] == NOT_CONFIGURED else quality["task"]
    return {"deployment_id": dep, "quality": quality, "since": iso(since), "until": iso(until),
            "window": window_text(window),
            **figures_over(index, dep, since, until, window, route, task)}
