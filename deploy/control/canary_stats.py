"""The statistics of the canary judge: one-sided tests "is the canary worse?" and shift estimates.

Pure numpy/scipy functions over samples; no knowledge of metrics or bounds (``judge.py`` has
those).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

MAX_PAIRS = 1_000_000
"""Pairs the Hodges-Lehmann estimate looks at (8 MB of float64); larger samples are thinned."""
RATIO_FLOOR = 1e-6
"""Values below this (a latency of 0 s) count as this in a ratio, so the logarithm is finite."""


def mann_whitney_worse(canary: np.ndarray, stable: np.ndarray) -> float:
    """p-value of the one-sided Mann-Whitney U test that canary values tend to be larger.

    scipy picks the exact distribution for small samples without ties and the normal
    approximation with tie correction otherwise; when every value of both samples is the same
    there is no evidence of a difference and the p-value is 1.
    """
    if canary.size == 0 or stable.size == 0:
        raise ValueError("the Mann-Whitney U test needs at least one value per variant")
    result = stats.mannwhitneyu(canary, stable, alternative="greater")
    p_value = float(result.pvalue)
    return 1.0 if math.isnan(p_value) else p_value


def hodges_lehmann_shift(
    canary: np.ndarray, stable: np.ndarray, max_pairs: int = MAX_PAIRS
) -> float:
    """Median of all pairwise differences ``canary[i] - stable[j]``: the estimated shift.

    Above ``max_pairs`` pairs each sample is thinned to evenly spaced order statistics (the
    same quantiles of its sorted values), which is deterministic and keeps both distributions'
    shapes, so the same samples always give the same estimate.
    """
    if canary.size == 0 or stable.size == 0:
        raise ValueError("the Hodges-Lehmann estimate needs at least one value per variant")
    canary, stable = _thin(canary, stable, max_pairs)
    return float(np.median(np.subtract.outer(canary, stable)))


def hodges_lehmann_ratio(
    canary: np.ndarray, stable: np.ndarray, max_pairs: int = MAX_PAIRS
) -> float:
    """Median of all pairwise ratios ``canary[i] / stable[j]``: the estimated factor.

    Computed as the Hodges-Lehmann shift of the logarithms, values floored at ``RATIO_FLOOR``.
    """
    logs = (np.log(np.maximum(v, RATIO_FLOOR)) for v in (canary, stable))
    return math.exp(hodges_lehmann_shift(*logs, max_pairs=max_pairs))


def _thin(
    canary: np.ndarray,
    stable: np.ndarray,
    max_pairs: int,
) -> tuple[np.ndarray, np.ndarray]:
    if canary.size * stable.size <= max_pairs:
        return canary, stable
    # Shrink both by the same factor, never below one value.
    factor = math.sqrt(max_pairs / (canary.size * stable.size))
    return _quantile_subsample(canary, factor), _quantile_subsample(stable, factor)


def _quantile_subsample(values: np.ndarray, factor: float) -> np.ndarray:
    keep = max(1, math.floor(values.size * factor))
    ordered = np.sort(values)
    return ordered[np.linspace(0, values.size - 1, keep).round().astype(np.intp)]


def two_proportion_worse(
    canary_hits: int, canary_total: int, stable_hits: int, stable_total: int
) -> float:
    """p-value of the one-sided pooled two-proportion z-test that the canary's rate is higher.

    When the pooled rate is 0 or 1 both rates are equal and the p-value is 1.
    """
    if canary_total <= 0 or stable_total <= 0:
        raise ValueError("the two-proportion test needs at least one trial per variant")
    pooled = (canary_hits + stable_hits) / (canary_total + stable_total)
    variance = pooled * (1 - pooled) * (1 / canary_total + 1 / stable_total)
    if variance <= 0:
        return 1.0
    z = (canary_hits / canary_total - stable_hits / stable_total) / math.sqrt(variance)
    return float(stats.norm.sf(z))
