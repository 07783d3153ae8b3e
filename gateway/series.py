"""The per-request counter and histograms, kept as plain numbers and exported at scrape time.

``prometheus_client``'s ``Counter`` and ``Histogram`` take a lock per increment: seven
lock round trips per proxied request for ``mlgate_requests_total`` and the three
duration histograms. These series are only ever updated on the event loop, so they
are plain lists here (a ``bisect`` finds the bucket) and :class:`RequestSeries` hands
them to the registry as the same families ``prometheus_client`` would write — names,
help, labels, ``le`` values, no ``_created`` — when ``/metrics`` is scraped (from a
worker thread: a scrape may see one request counted in a bucket a moment before it
is in ``_count``, as with any lock-free read; every counter only grows).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class Histogram:
    """Counts per bucket (the last: above every bound) and the sum of the values."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> tuple[list[tuple[str, float]], float]:
        counts = list(self.counts)
        out, total = [], 0
        for bound, count in zip(self.bounds, counts, strict=False):
            total += count
            out.append((floatToGoString(bound), total))
        total += counts[-1]
        out.append(("+Inf", total))
        return out, self.sum


class Series:
    """One label set: the request count and the three duration histograms."""

    __slots__ = ("count", "overhead", "total", "upstream")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.count = 0
        self.total = Histogram(bounds)
        self.upstream = Histogram(bounds)
        self.overhead = Histogram(bounds)


class RequestSeries(Collector):
    """Every label set seen, exported as a counter and three histograms."""

    def __init__(self, labels: Sequence[str], bounds: Sequence[float],
                 counter: tuple[str, str], histograms: Sequence[tuple[str, str]]) -> None:
        self.labels = list(labels)
        self.bounds = tuple(bounds)
        self.counter = counter
        self.histograms = histograms
        self._series: dict[tuple[str, ...], Series] = {}

    def series(self, labels: tuple[str, ...]) -> Series:
        found = self._series.get(labels)
        if found is None:
            found = self._series[labels] = Series(self.bounds)
        return found

    def describe(self) -> Iterable[Any]:
        return self._families({})

    def collect(self) -> Iterable[Any]:
        return self._families(dict(self._series))

    def _families(self, series: dict[tuple[str, ...], Series]) -> list[Any]:
        name, help_text = self.counter
        count = CounterMetricFamily(name, help_text, labels=self.labels)
        hists = [HistogramMetricFamily(n, h, labels=self.labels) for n, h in self.histograms]
        for labels, s in series.items():
            count.add_metric(list(labels), s.count)
            for family, hist in zip(hists, (s.total, s.upstream, s.overhead), strict=True):
                buckets, total = hist.cumulative()
                family.add_metric(list(labels), buckets, total)
        return [count, *hists]
