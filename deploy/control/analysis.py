"""``spec.analysis`` of a ModelRoute: the canary analysis settings, parsed and validated (pure).

``parse_analysis(raw, target_ids)`` turns the YAML/JSON mapping into a frozen ``AnalysisSpec``
or raises one ``AnalysisError`` listing every broken field as ``(path, message)``.

Fields and defaults (durations: a number of seconds, or ``500ms``, ``30s``, ``5m``, ``1h``,
``1d``, ``1h30m``):

- ``canary`` (required): the target that is rolled out; it must be one of the route's
  ``modelDeployments``. The route must have exactly two targets: the other one is the
  *stable* variant. A route of three or more targets is refused, because the rollout moves
  weight between two variants (their weights always sum to 100) and judges the canary against
  one baseline; give the extra targets their own route. ``mirror`` is not a target and may stay.
- ``interval`` (default ``1m``, at least ``1s``): one judgement per interval.
- ``stepWeights`` (default ``[10, 25, 50]``): the canary's weight at each step, integers from
  1 to 99, strictly increasing; after the last step passes the canary gets 100.
- ``threshold`` (default 3, at least 1): failed judgements during the whole rollout (they are
  not reset by a passed step) that roll it back.
- ``minSamples`` (default 50, at least 1): per variant and metric; fewer makes that metric
  *inconclusive* and the step waits.
- ``progressDeadline`` (default ``30m``, at least ``interval``): the longest one step may go
  without passing (paused time is not counted); then the rollout fails.
- ``metrics`` (required, at least one): each ``{name, max?, maxIncrease?, confidence?}``;
  ``name`` is ``error-rate``, ``latency-p50``, ``latency-p90``, ``latency-p95``, ``latency-p99``
  or ``quality`` (which also needs ``metric``: ``mae`` or ``accuracy``). ``max`` is a ceiling on
  the canary's figure (error-rate: percent of 5xx answers, 0-100; latency: seconds; mae: label
  units; accuracy: percent of *wrong* predictions, 0-100). ``maxIncrease`` is the allowed
  increase over the stable figure, in percent of it. A metric that gives neither gets
  ``maxIncrease: 0``: it fails when the canary is significantly worse than stable at all.
  ``confidence`` (default 0.95, from 0.5 to below 1) is the level of the significance test.
  ``rmse`` and ``bias`` are refused: the judge gets one error per prediction (absolute error,
  or 0/1 for a classification), and a rank test of squared errors is the same test as of
  absolute errors (use ``mae``), while bias is signed and has no "worse" side.

How each metric is judged is described in ``deploy/control/judge.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from .analysis_metrics import MetricSpec, parse_metrics
from .durations import format_duration, parse_duration

DEFAULT_INTERVAL = 60.0
DEFAULT_STEP_WEIGHTS = (10, 25, 50)
DEFAULT_THRESHOLD = 3
DEFAULT_MIN_SAMPLES = 50
DEFAULT_PROGRESS_DEADLINE = 1800.0
MIN_INTERVAL = 1.0

ANALYSIS_FIELDS = (
    "canary",
    "interval",
    "stepWeights",
    "threshold",
    "minSamples",
    "progressDeadline",
    "metrics",
)


class AnalysisError(ValueError):
    """An invalid ``spec.analysis``; ``errors`` lists ``(field path, message)`` pairs."""

    def __init__(self, errors: Sequence[tuple[str, str]]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(self.messages()))

    def messages(self) -> list[str]:
        """One ``"path: message"`` line per problem (the form the REST API answers with)."""
        return [f"{path}: {message}" for path, message in self.errors]


@dataclass(frozen=True)
class AnalysisSpec:
    """A validated ``spec.analysis``; durations in seconds. ``stable`` is the route's other
    target (derived, so ``to_dict`` leaves it out)."""

    canary: str
    stable: str
    metrics: tuple[MetricSpec, ...]
    interval: float = DEFAULT_INTERVAL
    step_weights: tuple[int, ...] = DEFAULT_STEP_WEIGHTS
    threshold: int = DEFAULT_THRESHOLD
    min_samples: int = DEFAULT_MIN_SAMPLES
    progress_deadline: float = DEFAULT_PROGRESS_DEADLINE

    def to_dict(self) -> dict[str, Any]:
        return {
            "canary": self.canary,
            "interval": format_duration(self.interval),
            "stepWeights": list(self.step_weights),
            "threshold": self.threshold,
            "minSamples": self.min_samples,
            "progressDeadline": format_duration(self.progress_deadline),
            "metrics": [m.to_dict() for m in self.metrics],
        }


def parse_analysis(
    raw: Any,
    target_ids: Sequence[str],
    path: str = "spec.analysis",
) -> AnalysisSpec:
    """Validate ``raw`` for a route whose targets are ``target_ids`` (their ``mdName`` s)."""
    if not isinstance(raw, dict):
        raise AnalysisError([(path, "must be an object with canary, stepWeights and metrics")])
    errors: list[tuple[str, str]] = []
    errors += [
        (f"{path}.{key}", "unknown field; known: " + ", ".join(ANALYSIS_FIELDS))
        for key in raw
        if key not in ANALYSIS_FIELDS
    ]
    canary, stable = _parse_targets(raw.get("canary"), list(target_ids), path, errors)
    interval = _duration(raw, "interval", DEFAULT_INTERVAL, path, errors)
    if interval is not None and interval < MIN_INTERVAL:
        errors.append((f"{path}.interval", f"must be at least 1s, got {raw['interval']!r}"))
    deadline = _duration(raw, "progressDeadline", DEFAULT_PROGRESS_DEADLINE, path, errors)
    if interval is not None and deadline is not None and deadline < interval:
        errors.append(
            (
                f"{path}.progressDeadline",
                f"must be at least the interval ({format_duration(interval)}), "
                f"got {raw.get('progressDeadline', format_duration(deadline))!r}",
            )
        )
    steps = _parse_step_weights(raw.get("stepWeights", list(DEFAULT_STEP_WEIGHTS)), path, errors)
    threshold = _positive_int(raw, "threshold", DEFAULT_THRESHOLD, path, errors)
    min_samples = _positive_int(raw, "minSamples", DEFAULT_MIN_SAMPLES, path, errors)
    metrics = parse_metrics(raw.get("metrics"), f"{path}.metrics", errors)
    if errors:
        raise AnalysisError(errors)
    return AnalysisSpec(
        canary=canary,
        stable=stable,
        metrics=metrics,
        interval=interval,
        step_weights=steps,
        threshold=threshold,
        min_samples=min_samples,
        progress_deadline=deadline,
    )


def _parse_targets(
    canary: Any, targets: list[str], path: str, errors: list[tuple[str, str]]
) -> tuple[str, str]:
    if not isinstance(canary, str) or not canary:
        errors.append((f"{path}.canary", "must name the target deployment to roll out"))
        return "", ""
    if canary not in targets:
        errors.append(
            (
                f"{path}.canary",
                f"must be one of the route's targets "
                f"({', '.join(targets) or 'none'}), got {canary!r}",
            )
        )
        return canary, ""
    if len(targets) != 2:
        errors.append(
            (
                f"{path}.canary",
                f"needs a route of exactly two targets, the stable "
                f"and the canary; this one has {len(targets)}: {', '.join(targets)}",
            )
        )
        return canary, ""
    return canary, next(t for t in targets if t != canary)


def _duration(
    raw: dict[str, Any], key: str, default: float, path: str, errors: list[tuple[str, str]]
) -> float | None:
    if key not in raw:
        return default
    try:
        return parse_duration(raw[key])
    except ValueError as exc:
        errors.append((f"{path}.{key}", str(exc)))
        return None


def _positive_int(
    raw: dict[str, Any], key: str, default: int, path: str, errors: list[tuple[str, str]]
) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        errors.append((f"{path}.{key}", f"must be an integer of at least 1, got {value!r}"))
        return default
    return value


def _parse_step_weights(value: Any, path: str, errors: list[tuple[str, str]]) -> tuple[int, ...]:
    where = f"{path}.stepWeights"
    if not isinstance(value, list) or not value:
        errors.append((where, f"must be a non-empty list of canary weights, got {value!r}"))
        return ()
    if any(isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= 99 for w in value):
        errors.append((where, f"each weight must be an integer from 1 to 99, got {value!r}"))
        return ()
    if any(b <= a for a, b in pairwise(value)):
        errors.append((where, f"must increase, got {value!r}"))
        return ()
    return tuple(value)
