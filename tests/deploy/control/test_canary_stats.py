"""The statistics of the judge, checked against independent computations."""

from __future__ import annotations

import itertools
import statistics

import numpy as np
import pytest
from scipy import stats

from deploy.control.canary_stats import (
    RATIO_FLOOR,
    hodges_lehmann_ratio,
    hodges_lehmann_shift,
    mann_whitney_worse,
    two_proportion_worse,
)


def test_hodges_lehmann_is_the_median_of_pairwise_differences() -> None:
    rng = np.random.default_rng(7)
    canary, stable = rng.exponential(1.0, 37), rng.exponential(0.8, 23)
    pairs = [c - s for c, s in itertools.product(canary.tolist(), stable.tolist())]
    assert hodges_lehmann_shift(canary, stable) == pytest.approx(statistics.median(pairs))


def test_hodges_lehmann_recovers_a_known_shift() -> None:
    rng = np.random.default_rng(11)
    stable = rng.gamma(2.0, 0.05, 800)
    canary = rng.gamma(2.0, 0.05, 600) + 0.03
    assert hodges_lehmann_shift(canary, stable) == pytest.approx(0.03, abs=0.01)


def test_hodges_lehmann_ratio_is_the_median_of_pairwise_ratios() -> None:
    rng = np.random.default_rng(8)
    canary, stable = rng.lognormal(0, 1, 31), rng.lognormal(0, 1, 17)
    ratios = [c / s for c, s in itertools.product(canary.tolist(), stable.tolist())]
    assert hodges_lehmann_ratio(canary, stable) == pytest.approx(statistics.median(ratios))


def test_hodges_lehmann_ratio_recovers_a_known_factor() -> None:
    rng = np.random.default_rng(10)
    stable = rng.lognormal(np.log(0.1), 0.5, 3000)
    canary = rng.lognormal(np.log(0.1), 0.5, 3000) * 1.3
    assert hodges_lehmann_ratio(canary, stable) == pytest.approx(1.3, abs=0.05)


def test_hodges_lehmann_ratio_floors_zero_values() -> None:
    ratio = hodges_lehmann_ratio(np.zeros(5), np.full(5, 2 * RATIO_FLOOR))
    assert ratio == pytest.approx(0.5)


def test_large_samples_are_thinned_deterministically_and_stay_close() -> None:
    rng = np.random.default_rng(3)
    stable = rng.lognormal(-2.0, 0.5, 4000)
    canary = rng.lognormal(-2.0, 0.5, 3000) + 0.02
    exact = hodges_lehmann_shift(canary, stable, max_pairs=canary.size * stable.size)
    thinned = hodges_lehmann_shift(canary, stable, max_pairs=100_000)
    assert thinned == hodges_lehmann_shift(canary, stable, max_pairs=100_000)
    shuffled = hodges_lehmann_shift(
        rng.permutation(canary), rng.permutation(stable), max_pairs=100_000
    )
    assert shuffled == thinned, "the thinning depends on the values, not their order"
    assert thinned == pytest.approx(exact, abs=0.003)
    assert hodges_lehmann_shift(canary, stable) == pytest.approx(exact, abs=0.003)


def test_thinning_keeps_one_value_of_a_tiny_sample() -> None:
    canary, stable = np.array([5.0]), np.arange(10_000, dtype=float)
    assert hodges_lehmann_shift(canary, stable, max_pairs=100) == pytest.approx(
        5.0 - np.median(stable), abs=60
    )


def test_mann_whitney_is_one_sided() -> None:
    rng = np.random.default_rng(5)
    stable = rng.normal(1.0, 0.1, 200)
    slower = rng.normal(1.1, 0.1, 200)
    faster = rng.normal(0.9, 0.1, 200)
    assert mann_whitney_worse(slower, stable) < 1e-6
    assert mann_whitney_worse(faster, stable) > 1 - 1e-6


def test_mann_whitney_of_identical_constants_is_no_evidence() -> None:
    assert mann_whitney_worse(np.full(60, 0.2), np.full(80, 0.2)) == 1.0


def test_mann_whitney_needs_values() -> None:
    with pytest.raises(ValueError):
        mann_whitney_worse(np.array([]), np.array([1.0]))
    with pytest.raises(ValueError):
        hodges_lehmann_shift(np.array([1.0]), np.array([]))


@pytest.mark.parametrize(
    ("c_hits", "c_n", "s_hits", "s_n"), [(30, 1000, 20, 9000), (5, 200, 9, 400), (1, 50, 2, 50)]
)
def test_two_proportion_matches_the_chi_square_test(
    c_hits: int, c_n: int, s_hits: int, s_n: int
) -> None:
    table = [[c_hits, c_n - c_hits], [s_hits, s_n - s_hits]]
    chi2 = stats.chi2_contingency(table, correction=False)
    higher = c_hits / c_n > s_hits / s_n
    one_sided = chi2.pvalue / 2 if higher else 1 - chi2.pvalue / 2
    assert two_proportion_worse(c_hits, c_n, s_hits, s_n) == pytest.approx(one_sided)


@pytest.mark.parametrize(("c_hits", "s_hits"), [(0, 0), (100, 400)])
def test_two_proportion_of_equal_extreme_rates(c_hits: int, s_hits: int) -> None:
    assert two_proportion_worse(c_hits, 100, s_hits, 400) == 1.0


def test_two_proportion_needs_trials() -> None:
    with pytest.raises(ValueError):
        two_proportion_worse(0, 0, 1, 10)
