"""The canary judge: one window of canary and stable data in, one verdict per metric out (pure).

Every metric compares the canary with the stable variant over the same window. The rules,
per metric (``alpha`` is ``1 - confidence``; ``allowed`` is ``maxIncrease`` percent of the
stable figure, ``maxIncrease`` being 0 when a metric gives no bound at all):

- **too few samples**: a variant with fewer than ``minSamples`` (requests for ``error-rate``,
  latency samples for ``latency-*``, labelled predictions for ``quality``) makes the metric
  *inconclusive*: nothing is decided, the step waits for more data.
- **error-rate** (figure: percent of the variant's requests answered 5xx): fails when the
  canary's figure is over ``max``; or when a one-sided pooled two-proportion z-test finds the
  canary's rate higher with ``p < alpha`` AND the difference (canary minus stable, in
  percentage points) is more than ``allowed``. With stable at 0 %, ``allowed`` is 0.
- **latency-pNN** (figure: the variant's NNth percentile, seconds): fails when the canary's
  figure is over ``max``; or when a one-sided Mann-Whitney U test finds canary latencies
  larger with ``p < alpha`` AND the Hodges-Lehmann ratio (median of all pairwise ratios
  canary / stable, computed on logarithms) is more than ``1 + maxIncrease / 100``. Latency
  changes by a factor (a slower model is slower in proportion), and when it does every
  percentile grows by that factor, so one rule serves p50 and p99 alike; the verdict's
  ``effect`` is that growth in seconds, ``(ratio - 1) * stable pNN``, compared with
  ``allowed``. The test and the ratio are of whole distributions, so a canary whose median is
  the same but whose tail alone is longer is caught by ``max``, not by ``maxIncrease``.
- **quality, metric mae** (figure: mean absolute error of the labelled predictions whose
  *prediction* falls in the window, so late labels count): fails when the canary's figure is
  over ``max``; or when the Mann-Whitney U test finds canary errors larger with ``p < alpha``
  AND their Hodges-Lehmann shift (median of all pairwise differences canary - stable, label
  units) is more than ``allowed``. The shift is that of a typical prediction's error: robust to
  a few wild labels, and smaller than the difference of the means when the canary's errors
  are spread wider rather than moved.
- **quality, metric accuracy** (samples: 1 for a wrong prediction, 0 for a right one; figure:
  percent of wrong predictions, i.e. 100 - accuracy): judged like ``error-rate``. A rank test
  of 0/1 values reduces to this proportion test, and the median of 0/1 pairwise differences is
  0 unless most pairs differ, so the difference of rates is the effect.

A metric fails if any of its rules fails, and passes otherwise. The judgement fails if any
metric fails, else is inconclusive if any metric is, else passes. Every verdict carries the
canary figure, the stable figure, the bound on the canary's figure (the lower of ``max`` and
stable + ``allowed``), the p-value, the effect and a sentence saying why.

"pass" means no evidence of harm, not proof of none: with few samples a test has little power
and a modest regression can pass; raise ``minSamples`` for finer judgements.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .analysis import AnalysisSpec
from .analysis_metrics import ERROR_RATE, LATENCY_PERCENTILES, MetricSpec
from .canary_stats import (
    hodges_lehmann_ratio,
    hodges_lehmann_shift,
    mann_whitney_worse,
    two_proportion_worse,
)
from .verdicts import FAIL, INCONCLUSIVE, PASS, Judgement, MetricVerdict, WindowData


def judge(spec: AnalysisSpec, window: WindowData) -> Judgement:
    """Judge every metric of ``spec`` over ``window`` (rules in the module docstring)."""
    verdicts = tuple(_judge_metric(m, spec.min_samples, window) for m in spec.metrics)
    found = {v.verdict for v in verdicts}
    overall = FAIL if FAIL in found else INCONCLUSIVE if INCONCLUSIVE in found else PASS
    return Judgement(overall, verdicts)


def _judge_metric(metric: MetricSpec, min_samples: int, window: WindowData) -> MetricVerdict:
    canary, stable = window.canary, window.stable
    if metric.name == ERROR_RATE:
        return _proportion(
            metric,
            min_samples,
            (canary.errors, canary.requests),
            (stable.errors, stable.requests),
            "requests",
        )
    if metric.metric == "accuracy":
        for values in (canary.quality, stable.quality):
            if not np.all((values == 0) | (values == 1)):
                return _verdict(
                    metric,
                    INCONCLUSIVE,
                    None,
                    None,
                    None,
                    None,
                    None,
                    (canary.quality.size, stable.quality.size),
                    f"{metric.label}: needs 0/1 samples (1 = wrong prediction), got other "
                    "values: is the deployment a regression? judge metric: mae",
                )
        return _proportion(
            metric,
            min_samples,
            (int(canary.quality.sum()), canary.quality.size),
            (int(stable.quality.sum()), stable.quality.size),
            "labelled predictions",
        )
    if metric.name in LATENCY_PERCENTILES:
        pct = LATENCY_PERCENTILES[metric.name]
        return _ranked(
            metric,
            min_samples,
            canary.latencies,
            stable.latencies,
            lambda v: float(np.percentile(v, pct)),
            "latency samples",
            lambda c, s, stable_fig: stable_fig * (hodges_lehmann_ratio(c, s) - 1),
        )
    return _ranked(
        metric,
        min_samples,
        canary.quality,
        stable.quality,
        lambda v: float(np.mean(v)),
        "labelled predictions",
        lambda c, s, _: hodges_lehmann_shift(c, s),
    )


def _proportion(
    metric: MetricSpec,
    min_samples: int,
    canary: tuple[int, int],
    stable: tuple[int, int],
    unit: str,
) -> MetricVerdict:
    counts = (canary[1], stable[1])
    canary_fig = 100 * canary[0] / canary[1] if canary[1] else None
    stable_fig = 100 * stable[0] / stable[1] if stable[1] else None
    if min(counts) < min_samples:
        return _too_few(metric, canary_fig, stable_fig, counts, min_samples, unit)
    p_value = two_proportion_worse(canary[0], canary[1], stable[0], stable[1])
    return _decide(metric, canary_fig, stable_fig, canary_fig - stable_fig, p_value, counts)


def _ranked(
    metric: MetricSpec,
    min_samples: int,
    canary: np.ndarray,
    stable: np.ndarray,
    figure: Callable[[np.ndarray], float],
    unit: str,
    effect_of: Callable[[np.ndarray, np.ndarray, float], float],
) -> MetricVerdict:
    counts = (canary.size, stable.size)
    canary_fig = figure(canary) if canary.size else None
    stable_fig = figure(stable) if stable.size else None
    if min(counts) < min_samples:
        return _too_few(metric, canary_fig, stable_fig, counts, min_samples, unit)
    return _decide(
        metric,
        canary_fig,
        stable_fig,
        effect_of(canary, stable, stable_fig),
        mann_whitney_worse(canary, stable),
        counts,
    )


def _too_few(
    metric: MetricSpec,
    canary: float | None,
    stable: float | None,
    counts: tuple[int, int],
    min_samples: int,
    unit: str,
) -> MetricVerdict:
    reason = (
        f"{metric.label}: needs {min_samples} {unit} per variant, has {counts[0]} "
        f"canary and {counts[1]} stable"
    )
    return _verdict(metric, INCONCLUSIVE, canary, stable, None, None, None, counts, reason)


def _decide(
    metric: MetricSpec,
    canary: float,
    stable: float,
    effect: float,
    p_value: float,
    counts: tuple[int, int],
) -> MetricVerdict:
    alpha = 1 - metric.confidence
    problems: list[str] = []
    bounds: list[float] = []
    note = "within the ceiling"
    if metric.max is not None:
        bounds.append(metric.max)
        if canary > metric.max:
            problems.append(f"the canary is over the ceiling {_show(metric, metric.max)}")
    increase = metric.allowed_increase
    if increase is not None:
        allowed = increase / 100 * stable
        bounds.append(stable + allowed)
        shift = _show(metric, effect, signed=True)
        limit = f"{_show(metric, allowed, signed=True)} ({increase:g}% of stable)"
        test = f"p={p_value:.3g} {'<' if p_value < alpha else '>='} {alpha:.3g}"
        if p_value < alpha and effect > allowed:
            problems.append(
                f"worse by {shift} ({_effect_name(metric, effect, stable)}), more than the allowed "
                f"{limit}, significant ({test})"
            )
        elif p_value < alpha:
            note = f"worse by {shift}, within the allowed {limit} ({test})"
        else:
            note = (
                f"not significantly worse ({test}; {_effect_name(metric, effect, stable)} {shift})"
            )
    bound = min(bounds)
    head = (
        f"{metric.label}: canary {_show(metric, canary)}, stable {_show(metric, stable)}, "
        f"bound {_show(metric, bound)}"
    )
    if problems:
        return _verdict(
            metric,
            FAIL,
            canary,
            stable,
            bound,
            p_value,
            effect,
            counts,
            f"{head}: {'; '.join(problems)}",
        )
    return _verdict(metric, PASS, canary, stable, bound, p_value, effect, counts, f"{head}: {note}")


def _verdict(
    metric: MetricSpec,
    verdict: str,
    canary: float | None,
    stable: float | None,
    bound: float | None,
    p_value: float | None,
    effect: float | None,
    counts: tuple[int, int],
    reason: str,
) -> MetricVerdict:
    return MetricVerdict(
        metric.label,
        verdict,
        canary,
        stable,
        bound,
        p_value,
        effect,
        (int(counts[0]), int(counts[1])),
        reason,
    )


def _effect_name(metric: MetricSpec, effect: float, stable: float) -> str:
    if metric.name == ERROR_RATE or metric.metric == "accuracy":
        return "difference of rates"
    if metric.name in LATENCY_PERCENTILES and stable > 0:
        return f"Hodges-Lehmann ratio x{1 + effect / stable:.3g}"
    return "Hodges-Lehmann shift"


def _show(metric: MetricSpec, value: float, signed: bool = False) -> str:
    sign = "+" if signed and value >= 0 else ""
    if metric.name == ERROR_RATE:
        return f"{sign}{value:.3g}{' pp' if signed else '%'}"
    if metric.metric == "accuracy":
        return f"{sign}{value:.3g}{' pp' if signed else '% wrong'}"
    if metric.name in LATENCY_PERCENTILES:
        return f"{sign}{value:.4g}s"
    return f"{sign}{value:.4g}"
