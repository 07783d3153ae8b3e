"""The live join's Prometheus metrics, read at scrape time from the joiner (prometheus-client).

- ``mlgate_model_quality{deployment,metric}``: the figures over the deployment's current
  window (the last ``spec.quality.window``): ``count``, ``mae``, ``rmse``, ``bias`` or
  ``accuracy``, and ``labelled``, ``unlabelled`` predictions;
- ``mlgate_feedback_joined_total{deployment}``: predictions that got a valid label;
- ``mlgate_feedback_corrections_total{deployment}``: labels replaced by a later feedback;
- ``mlgate_feedback_unmatched_total``: feedback that never found its prediction;
- ``mlgate_feedback_invalid_total{deployment,reason}``: labels that could not be read;
- ``mlgate_feedback_label_delay_seconds{deployment}``: histogram of feedback time minus
  prediction time;
- ``mlgate_predictions_pending``, ``mlgate_feedback_waiting``: what the join holds now;
- ``mlgate_predictions_evicted_total``: predictions dropped for the ``max_pending`` bound.

Counters count since this process built its figures (a restart rebuilds them from storage).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from .index import DELAY_BUCKETS
from .joiner import Joiner
from .report import NOT_CONFIGURED, describe, quality_now

GAUGED = ("count", "mae", "rmse", "bias", "accuracy", "labelled", "unlabelled")


class QualityCollector(Collector):
    def __init__(self, joiner: Joiner, clock: Callable[[], float] = time.time) -> None:
        self.joiner = joiner
        self.clock = clock

    def describe(self) -> Iterable[Any]:
        return ()

    def collect(self) -> Iterable[Any]:
        index = self.joiner.index
        stats = index.stats
        now = int(self.clock())
        quality = GaugeMetricFamily(
            "mlgate_model_quality", "Model quality over the deployment's current window "
            "(spec.quality.window): count, mae, rmse, bias or accuracy, labelled, unlabelled",
            labels=["deployment", "metric"])
        for info in self.joiner.deployments():
            spec = index.spec(info.id)
            if describe(spec, index.seen.get(info.id))["state"] == NOT_CONFIGURED:
                continue
            figures = quality_now(index, info.id, now, spec.window)
            for metric in GAUGED:
                value = figures.get(metric)
                if value is not None:
                    quality.add_metric([info.id, metric], float(value))
        yield quality
        joined = CounterMetricFamily("mlgate_feedback_joined",
                                     "Predictions that got a valid label", labels=["deployment"])
        for dep, count in sorted(stats.joined.items()):
            joined.add_metric([dep], count)
        yield joined
        corrections = CounterMetricFamily(
            "mlgate_feedback_corrections", "Labels replaced by a later feedback for the same "
            "Request-ID", labels=["deployment"])
        for dep, count in sorted(stats.corrections.items()):
            corrections.add_metric([dep], count)
        yield corrections
        yield CounterMetricFamily("mlgate_feedback_unmatched",
                                  "Feedback that never found its prediction (waited too long, "
                                  "or its prediction was evicted)", value=stats.unmatched)
        invalid = CounterMetricFamily("mlgate_feedback_invalid",
                                      "Labels that could not be read, by reason",
                                      labels=["deployment", "reason"])
        for (dep, reason), count in sorted(stats.invalid.items()):
            invalid.add_metric([dep, reason], count)
        yield invalid
        delay = HistogramMetricFamily("mlgate_feedback_label_delay_seconds",
                                      "Feedback time minus prediction time of joined labels",
                                      labels=["deployment"])
        for dep, counts in sorted(stats.delays.items()):
            cumulative, buckets = 0.0, []
            for bound, count in zip((*DELAY_BUCKETS, float("inf")), counts[:-1], strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            delay.add_metric([dep], buckets, sum_value=counts[-1])
        yield delay
        yield GaugeMetricFamily("mlgate_predictions_pending",
                                "Predictions the join keeps for their label",
                                value=len(index.slots))
        yield GaugeMetricFamily("mlgate_feedback_waiting",
                                "Feedback waiting for its prediction", value=len(index.waiting))
        yield CounterMetricFamily("mlgate_predictions_evicted",
                                  "Predictions dropped to keep within quality.max_pending",
                                  value=stats.evicted)
