"""Prometheus metrics of canary rollouts, read at scrape time from what the driver keeps.

Per route with ``spec.analysis`` (label ``route``):

- ``mlgate_rollout_weight{route,deployment}`` (gauge): the weight the rollout gives each of
  the two targets, 0-100;
- ``mlgate_rollout_phase{route,phase}`` (gauge): 1 for the rollout's phase, 0 for the four
  others (Progressing, Paused, Inconclusive, Succeeded, Failed);
- ``mlgate_rollout_judgements_total{route,metric,verdict}`` (counter): metric verdicts
  (``pass``, ``fail``, ``inconclusive``) per judged metric (``error-rate``,
  ``latency-p99``, ``quality-mae``, ...) since this mlgate started; every verdict of a
  route's metrics starts at 0, so ``increase()`` sees the first one.

The collector runs in the thread that renders ``/metrics``; it reads a snapshot the driver
replaces as a whole (no lock needed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .rollout_state import PHASES
from .verdicts import VERDICTS


@dataclass(frozen=True)
class RolloutFigures:
    phase: str
    weights: Mapping[str, int]
    metrics: tuple[str, ...]
    """The labels of the judged metrics (``quality-mae``, ...)."""


class RolloutMetrics(Collector):
    def __init__(self) -> None:
        self._routes: dict[str, RolloutFigures] = {}
        self._judgements: dict[tuple[str, str, str], int] = {}

    def set_routes(self, routes: Mapping[str, RolloutFigures]) -> None:
        """Every rollout as stored now (a route that lost its rollout disappears)."""
        self._routes = dict(routes)
        self._judgements = {k: v for k, v in self._judgements.items() if k[0] in routes}

    def count(self, route_id: str, verdicts: Iterable[tuple[str, str]]) -> None:
        """One judgement's ``(metric, verdict)`` pairs."""
        counts = dict(self._judgements)
        for metric, verdict in verdicts:
            key = (route_id, metric, verdict)
            counts[key] = counts.get(key, 0) + 1
        self._judgements = counts

    def describe(self) -> Iterable[Any]:
        return ()

    def collect(self) -> Iterable[Any]:
        routes, counts = self._routes, self._judgements
        weight = GaugeMetricFamily("mlgate_rollout_weight", "The weight a canary rollout gives "
                                   "each target of its route (0-100)",
                                   labels=["route", "deployment"])
        phase = GaugeMetricFamily("mlgate_rollout_phase", "1 for the canary rollout's phase "
                                  "(Progressing, Paused, Inconclusive, Succeeded, Failed)",
                                  labels=["route", "phase"])
        judgements = CounterMetricFamily(
            "mlgate_rollout_judgements", "Metric verdicts of a canary rollout's judgements: "
            "pass, fail or inconclusive", labels=["route", "metric", "verdict"])
        for route_id in sorted(routes):
            figures = routes[route_id]
            for deployment, value in figures.weights.items():
                weight.add_metric([route_id, deployment], value)
            for name in PHASES:
                phase.add_metric([route_id, name], 1 if name == figures.phase else 0)
            for metric in figures.metrics:
                for verdict in VERDICTS:
                    judgements.add_metric([route_id, metric, verdict],
                                          counts.get((route_id, metric, verdict), 0))
        yield from (weight, phase, judgements)
