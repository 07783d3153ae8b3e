"""The canary judge on synthetic samples from numpy's seeded generators."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest

from deploy.control.analysis import AnalysisSpec, parse_analysis
from deploy.control.judge import judge
from deploy.control.verdicts import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    MetricVerdict,
    VariantData,
    WindowData,
)

LATENCIES = ["latency-p50", "latency-p90", "latency-p95", "latency-p99"]
PERCENTILE = {"latency-p50": 50, "latency-p90": 90, "latency-p95": 95, "latency-p99": 99}


def spec_of(*metrics: dict[str, Any], min_samples: int = 50) -> AnalysisSpec:
    return parse_analysis(
        {"canary": "new", "minSamples": min_samples, "metrics": list(metrics)}, ["old", "new"]
    )


def only(spec: AnalysisSpec, canary: VariantData, stable: VariantData) -> MetricVerdict:
    [verdict] = judge(spec, WindowData(canary, stable)).metrics
    return verdict


def latencies(seed: int, n: int, scale: float = 1.0) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(0.1), 0.4, n) * scale


# --- latency ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", LATENCIES)
def test_clearly_slower_canary_fails(name: str) -> None:
    spec = spec_of({"name": name, "maxIncrease": 20})
    canary, stable = latencies(1, 400, 1.5), latencies(2, 3000)
    verdict = only(spec, VariantData(latencies=canary), VariantData(latencies=stable))
    assert verdict.verdict == FAIL
    assert verdict.canary == pytest.approx(np.percentile(canary, PERCENTILE[name]))
    assert verdict.stable == pytest.approx(np.percentile(stable, PERCENTILE[name]))
    assert verdict.bound == pytest.approx(verdict.stable * 1.2)
    assert verdict.p_value < 0.05
    assert verdict.effect > 0.2 * verdict.stable
    assert verdict.samples == (400, 3000)
    assert verdict.reason.startswith(
        f"{name}: canary {verdict.canary:.4g}s, stable "
        f"{verdict.stable:.4g}s, bound {verdict.bound:.4g}s"
    )
    ratio = re.search(r"Hodges-Lehmann ratio x([0-9.]+)", verdict.reason)
    assert ratio is not None and float(ratio.group(1)) == pytest.approx(1.5, abs=0.1)
    assert verdict.effect == pytest.approx((float(ratio.group(1)) - 1) * verdict.stable, rel=0.02)
    assert "more than the allowed" in verdict.reason


@pytest.mark.parametrize("name", LATENCIES)
def test_equal_canary_passes(name: str) -> None:
    spec = spec_of({"name": name, "maxIncrease": 20})
    verdict = only(
        spec, VariantData(latencies=latencies(3, 400)), VariantData(latencies=latencies(4, 3000))
    )
    assert verdict.verdict == PASS
    assert verdict.effect == pytest.approx(0.0, abs=0.01)


def test_false_alarms_of_equal_variants_stay_near_one_minus_confidence() -> None:
    spec = spec_of({"name": "latency-p99"})  # no bound: any significant slowdown fails
    fails = sum(
        only(
            spec,
            VariantData(latencies=latencies(2 * s, 100)),
            VariantData(latencies=latencies(2 * s + 1, 300)),
        ).verdict
        == FAIL
        for s in range(300)
    )
    assert fails / 300 <= 0.09


def test_slightly_slower_within_the_allowed_increase_passes() -> None:
    spec = spec_of({"name": "latency-p99", "maxIncrease": 20})
    verdict = only(
        spec,
        VariantData(latencies=latencies(5, 5000, 1.05)),
        VariantData(latencies=latencies(6, 20000)),
    )
    assert verdict.verdict == PASS
    assert verdict.p_value < 0.05, "the slowdown is real"
    assert 0 < verdict.effect < 0.2 * verdict.stable
    assert "within the allowed" in verdict.reason


def test_without_a_bound_a_significant_slowdown_fails() -> None:
    spec = spec_of({"name": "latency-p50"})
    verdict = only(
        spec,
        VariantData(latencies=latencies(5, 5000, 1.05)),
        VariantData(latencies=latencies(6, 20000)),
    )
    assert verdict.verdict == FAIL
    assert verdict.bound == pytest.approx(verdict.stable)


def test_too_few_latency_samples_is_inconclusive() -> None:
    spec = spec_of({"name": "latency-p99", "maxIncrease": 20})
    verdict = only(
        spec,
        VariantData(latencies=latencies(7, 49, 3.0)),
        VariantData(latencies=latencies(8, 1000)),
    )
    assert verdict.verdict == INCONCLUSIVE
    assert verdict.samples == (49, 1000)
    assert verdict.reason == (
        "latency-p99: needs 50 latency samples per variant, has 49 canary and 1000 stable"
    )
    assert verdict.canary is not None and verdict.p_value is None


def test_empty_window_is_inconclusive() -> None:
    spec = spec_of({"name": "latency-p95", "maxIncrease": 20})
    verdict = only(spec, VariantData(), VariantData())
    assert (verdict.verdict, verdict.canary, verdict.stable, verdict.samples) == (
        INCONCLUSIVE,
        None,
        None,
        (0, 0),
    )


def test_heavy_ties() -> None:
    rng = np.random.default_rng(9)
    buckets = np.array([0.01, 0.02, 0.03, 0.05])
    stable = rng.choice(buckets, 2000, p=[0.4, 0.3, 0.2, 0.1])
    same = rng.choice(buckets, 500, p=[0.4, 0.3, 0.2, 0.1])
    worse = rng.choice(buckets, 500, p=[0.1, 0.2, 0.3, 0.4])
    spec = spec_of({"name": "latency-p50", "maxIncrease": 10})
    assert only(spec, VariantData(latencies=same), VariantData(latencies=stable)).verdict == PASS
    failed = only(spec, VariantData(latencies=worse), VariantData(latencies=stable))
    assert failed.verdict == FAIL and failed.p_value < 1e-6


def test_zero_variance_samples() -> None:
    spec = spec_of({"name": "latency-p99", "maxIncrease": 20})
    equal = only(
        spec, VariantData(latencies=np.full(100, 0.1)), VariantData(latencies=np.full(300, 0.1))
    )
    assert (equal.verdict, equal.p_value, equal.effect) == (PASS, 1.0, 0.0)
    slower = only(
        spec, VariantData(latencies=np.full(100, 0.2)), VariantData(latencies=np.full(300, 0.1))
    )
    assert slower.verdict == FAIL and slower.effect == pytest.approx(0.1)


def test_latency_ceiling_alone() -> None:
    spec = spec_of({"name": "latency-p99", "max": 0.25})
    verdict = only(
        spec,
        VariantData(latencies=latencies(10, 500, 1.2)),
        VariantData(latencies=latencies(11, 500)),
    )
    assert verdict.canary > 0.25 and verdict.verdict == FAIL
    assert verdict.bound == 0.25 and "over the ceiling 0.25s" in verdict.reason


def test_a_longer_tail_alone_is_caught_by_the_ceiling_not_by_max_increase() -> None:
    rng = np.random.default_rng(12)
    stable = rng.normal(0.1, 0.01, 3000)
    canary = rng.normal(0.1, 0.01, 1000)
    canary[:30] = 0.5  # 3 % of requests stall; the median does not move
    relative = only(
        spec_of({"name": "latency-p99", "maxIncrease": 20}),
        VariantData(latencies=canary),
        VariantData(latencies=stable),
    )
    assert relative.canary > 2 * relative.stable and relative.verdict == PASS
    ceiling = only(
        spec_of({"name": "latency-p99", "max": 0.2, "maxIncrease": 20}),
        VariantData(latencies=canary),
        VariantData(latencies=stable),
    )
    assert ceiling.verdict == FAIL and "over the ceiling 0.2s" in ceiling.reason
    assert ceiling.bound == pytest.approx(min(0.2, 1.2 * ceiling.stable))


# --- error rate ------------------------------------------------------------------------------


def test_error_rate_over_the_ceiling_fails() -> None:
    verdict = only(
        spec_of({"name": "error-rate", "max": 1}),
        VariantData(requests=1000, errors=30),
        VariantData(requests=9000, errors=20),
    )
    assert (verdict.verdict, verdict.canary, verdict.bound) == (FAIL, 3.0, 1.0)
    assert verdict.stable == pytest.approx(100 * 20 / 9000)
    assert verdict.reason.startswith("error-rate: canary 3%, stable 0.222%, bound 1%")
    assert "over the ceiling 1%" in verdict.reason


def test_error_rate_under_the_ceiling_passes_even_if_higher() -> None:
    verdict = only(
        spec_of({"name": "error-rate", "max": 1}),
        VariantData(requests=1000, errors=8),
        VariantData(requests=9000, errors=9),
    )
    assert verdict.verdict == PASS and verdict.canary == 0.8


def test_error_rate_significantly_over_stable_fails() -> None:
    verdict = only(
        spec_of({"name": "error-rate", "max": 5, "maxIncrease": 50}),
        VariantData(requests=2000, errors=40),
        VariantData(requests=18000, errors=90),
    )
    assert verdict.verdict == FAIL
    assert verdict.effect == pytest.approx(2.0 - 0.5)
    assert verdict.bound == pytest.approx(0.75)
    assert verdict.p_value < 1e-6


def test_error_rate_slightly_over_stable_within_allowed_passes() -> None:
    verdict = only(
        spec_of({"name": "error-rate", "maxIncrease": 50}),
        VariantData(requests=10**6, errors=11000),
        VariantData(requests=10**6, errors=10000),
    )
    assert verdict.verdict == PASS and verdict.p_value < 1e-6
    assert "within the allowed" in verdict.reason


def test_error_rate_equal_passes() -> None:
    rng = np.random.default_rng(13)
    canary, stable = rng.binomial(1000, 0.02), rng.binomial(9000, 0.02)
    verdict = only(
        spec_of({"name": "error-rate", "maxIncrease": 20}),
        VariantData(requests=1000, errors=int(canary)),
        VariantData(requests=9000, errors=int(stable)),
    )
    assert verdict.verdict == PASS


def test_error_rate_when_stable_is_clean_any_significant_rise_fails() -> None:
    spec = spec_of({"name": "error-rate"})
    clean = only(spec, VariantData(requests=1000), VariantData(requests=9000))
    assert (clean.verdict, clean.p_value) == (PASS, 1.0)
    one = only(spec, VariantData(requests=1000, errors=5), VariantData(requests=9000))
    assert one.verdict == FAIL and one.bound == 0.0


def test_error_rate_with_too_few_requests_is_inconclusive() -> None:
    verdict = only(
        spec_of({"name": "error-rate", "max": 1}),
        VariantData(requests=20, errors=20),
        VariantData(requests=900),
    )
    assert verdict.verdict == INCONCLUSIVE
    assert verdict.reason == (
        "error-rate: needs 50 requests per variant, has 20 canary and 900 stable"
    )
    assert verdict.canary == 100.0


def test_error_rate_without_requests() -> None:
    verdict = only(spec_of({"name": "error-rate", "max": 1}), VariantData(), VariantData())
    assert (verdict.verdict, verdict.canary, verdict.stable) == (INCONCLUSIVE, None, None)


# --- quality ---------------------------------------------------------------------------------


def abs_errors(seed: int, n: int, sigma: float) -> np.ndarray:
    return np.abs(np.random.default_rng(seed).normal(0.0, sigma, n))


def test_mae_worse_fails_equal_passes_slightly_worse_passes() -> None:
    spec = spec_of({"name": "quality", "metric": "mae", "maxIncrease": 5})
    stable = abs_errors(20, 4000, 1.0)
    worse = only(spec, VariantData(quality=abs_errors(21, 400, 1.4)), VariantData(quality=stable))
    assert worse.verdict == FAIL and worse.name == "quality-mae"
    assert worse.canary == pytest.approx(abs_errors(21, 400, 1.4).mean())
    assert worse.bound == pytest.approx(1.05 * stable.mean())
    equal = only(spec, VariantData(quality=abs_errors(22, 400, 1.0)), VariantData(quality=stable))
    assert equal.verdict == PASS
    slightly = only(
        spec_of({"name": "quality", "metric": "mae", "maxIncrease": 30}),
        VariantData(quality=abs_errors(23, 20000, 1.05)),
        VariantData(quality=abs_errors(24, 20000, 1.0)),
    )
    assert slightly.verdict == PASS and slightly.p_value < 0.05


def test_mae_ceiling() -> None:
    verdict = only(
        spec_of({"name": "quality", "metric": "mae", "max": 0.5}),
        VariantData(quality=abs_errors(25, 200, 1.0)),
        VariantData(quality=abs_errors(26, 200, 1.0)),
    )
    assert verdict.verdict == FAIL and "over the ceiling 0.5" in verdict.reason


def test_too_few_labels_is_inconclusive() -> None:
    verdict = only(
        spec_of({"name": "quality", "metric": "mae", "maxIncrease": 5}),
        VariantData(quality=abs_errors(27, 10, 5.0)),
        VariantData(quality=abs_errors(28, 500, 1.0)),
    )
    assert verdict.verdict == INCONCLUSIVE
    assert "needs 50 labelled predictions per variant, has 10 canary" in verdict.reason


def wrong(seed: int, n: int, rate: float) -> np.ndarray:
    return (np.random.default_rng(seed).random(n) < rate).astype(float)


def test_accuracy_is_judged_as_the_share_of_wrong_predictions() -> None:
    spec = spec_of({"name": "quality", "metric": "accuracy", "max": 30, "maxIncrease": 10})
    stable = wrong(30, 5000, 0.10)
    worse = only(spec, VariantData(quality=wrong(31, 1000, 0.2)), VariantData(quality=stable))
    assert worse.verdict == FAIL and worse.name == "quality-accuracy"
    assert worse.canary == pytest.approx(100 * wrong(31, 1000, 0.2).mean())
    assert worse.effect == pytest.approx(worse.canary - worse.stable)
    assert "% wrong" in worse.reason
    equal = only(spec, VariantData(quality=wrong(32, 1000, 0.10)), VariantData(quality=stable))
    assert equal.verdict == PASS
    ceiling = only(
        spec, VariantData(quality=wrong(33, 1000, 0.4)), VariantData(quality=wrong(34, 1000, 0.4))
    )
    assert ceiling.verdict == FAIL and "over the ceiling 30% wrong" in ceiling.reason


def test_accuracy_refuses_regression_errors() -> None:
    verdict = only(
        spec_of({"name": "quality", "metric": "accuracy", "maxIncrease": 5}),
        VariantData(quality=abs_errors(35, 100, 1.0)),
        VariantData(quality=wrong(36, 100, 0.1)),
    )
    assert verdict.verdict == INCONCLUSIVE and "0/1 samples" in verdict.reason


# --- the judgement ---------------------------------------------------------------------------


def window(canary_scale: float, canary_errors: int, canary_latencies: int) -> WindowData:
    return WindowData(
        VariantData(
            requests=1000,
            errors=canary_errors,
            latencies=latencies(40, canary_latencies, canary_scale),
            quality=abs_errors(41, 300, 1.0),
        ),
        VariantData(
            requests=9000,
            errors=90,
            latencies=latencies(42, 3000),
            quality=abs_errors(43, 3000, 1.0),
        ),
    )


SPEC = spec_of(
    {"name": "error-rate", "max": 5},
    {"name": "latency-p99", "maxIncrease": 20},
    {"name": "quality", "metric": "mae", "maxIncrease": 10},
)


def test_all_pass() -> None:
    judgement = judge(SPEC, window(1.0, 10, 500))
    assert judgement.verdict == PASS
    assert [m.verdict for m in judgement.metrics] == [PASS, PASS, PASS]


def test_inconclusive_beats_pass() -> None:
    judgement = judge(SPEC, window(1.0, 10, 20))
    assert judgement.verdict == INCONCLUSIVE
    assert judgement.summary().startswith("latency-p99: needs 50 latency samples")


def test_fail_beats_inconclusive() -> None:
    judgement = judge(SPEC, window(1.0, 100, 20))
    assert judgement.verdict == FAIL
    assert [m.verdict for m in judgement.metrics] == [FAIL, INCONCLUSIVE, PASS]
    assert judgement.summary().startswith("error-rate: canary 10%")


def test_judgement_dict_is_strict_json() -> None:
    for data in (
        window(1.5, 100, 500),
        window(1.0, 10, 0),
        WindowData(VariantData(), VariantData()),
    ):
        out = judge(SPEC, data).to_dict()
        assert json.loads(json.dumps(out, allow_nan=False)) == out
        assert set(out["metrics"][0]) == {
            "name",
            "verdict",
            "canary",
            "stable",
            "bound",
            "pValue",
            "effect",
            "samples",
            "reason",
        }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"requests": 5, "errors": 6},
        {"requests": 1, "errors": -1},
        {"latencies": [0.1, float("nan")]},
        {"latencies": [-0.1]},
        {"quality": [float("inf")]},
    ],
)
def test_bad_variant_data(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        VariantData(**kwargs)


def test_variant_samples_are_copied_and_read_only() -> None:
    source = np.array([0.1, 0.2])
    data = VariantData(latencies=source)
    source[0] = 9.0
    assert data.latencies[0] == 0.1
    with pytest.raises(ValueError):
        data.latencies[0] = 1.0
