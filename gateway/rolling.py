"""Rolling windows of request counts, failures and latency, per second, for the status page.

Pure and cheap on the write path: a window holds ``seconds`` preallocated slots, one
per second, reused (zeroed in place) when their second comes round again. Latency
goes into a fixed histogram per slot, so percentiles over any span are read by
merging counts, the way Prometheus' ``histogram_quantile`` reads its buckets.
Times are whole seconds supplied by the caller (tests pass their own).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

LATENCY_BOUNDS: tuple[float, ...] = (
    0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
    0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0,
)
"""Upper bounds in seconds; one more bucket above the last holds everything slower."""


@dataclass(frozen=True, slots=True)
class Totals:
    """Requests over a span: how many, how many failed, and their latency histogram."""

    requests: int
    errors: int
    buckets: tuple[int, ...]

    def quantile(self, q: float, bounds: Sequence[float] = LATENCY_BOUNDS) -> float | None:
        return quantile(q, self.buckets, bounds)

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests else None


def quantile(q: float, buckets: Sequence[int], bounds: Sequence[float] = LATENCY_BOUNDS
             ) -> float | None:
    """The ``q``-quantile (0..1) of a histogram, interpolated linearly inside its bucket.

    ``buckets[i]`` counts values in ``(bounds[i-1], bounds[i]]``, the last one everything
    above ``bounds[-1]`` (answered as ``bounds[-1]``). None for an empty histogram.
    """
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(buckets):
        if count and seen + count >= rank:
            if i >= len(bounds):
                return bounds[-1]
            lower = bounds[i - 1] if i > 0 else 0.0
            return lower + (bounds[i] - lower) * max(0.0, rank - seen) / count
        seen += count
    return bounds[-1]


class Window:
    """The last ``seconds`` seconds of one deployment's requests, one slot per second."""

    __slots__ = ("_counts", "_errors", "_hist", "_stamps", "_zeros", "bounds", "seconds")

    def __init__(self, seconds: int = 300, bounds: Sequence[float] = LATENCY_BOUNDS) -> None:
        if seconds < 1:
            raise ValueError("a window needs at least one second")
        self.seconds = seconds
        self.bounds = tuple(bounds)
        self._stamps = [-1] * seconds
        self._counts = [0] * seconds
        self._errors = [0] * seconds
        width = len(self.bounds) + 1
        self._zeros = [0] * width
        self._hist = [[0] * width for _ in range(seconds)]

    def add(self, second: int, latency: float, error: bool) -> None:
        """Count one request that finished in ``second`` after ``latency`` seconds."""
        i = second % self.seconds
        if self._stamps[i] != second:
            self._stamps[i] = second
            self._counts[i] = 0
            self._errors[i] = 0
            self._hist[i][:] = self._zeros
        self._counts[i] += 1
        if error:
            self._errors[i] += 1
        self._hist[i][bisect_left(self.bounds, latency)] += 1

    def totals(self, now: int, span: int) -> Totals:
        """Requests of the ``span`` seconds ending with second ``now`` (included)."""
        requests = errors = 0
        merged = list(self._zeros)
        for second in range(now - min(span, self.seconds) + 1, now + 1):
            i = second % self.seconds
            if self._stamps[i] != second:
                continue
            requests += self._counts[i]
            errors += self._errors[i]
            for j, count in enumerate(self._hist[i]):
                if count:
                    merged[j] += count
        return Totals(requests, errors, tuple(merged))

    def series(self, now: int, span: int, step: int) -> list[tuple[int, Totals]]:
        """``span`` seconds ending at ``now`` cut into ``step``-second points, oldest first.

        Each point is ``(last second of the step, totals of the step)``; ``span`` is
        rounded down to whole steps and capped at the window.
        """
        if step < 1:
            raise ValueError("step must be at least one second")
        points = min(span, self.seconds) // step
        return [(end, self.totals(end, step))
                for end in range(now - (points - 1) * step, now + 1, step)]

    # -- merging windows of several processes (``mlgate up --workers``) ----------------------

    def slots(self, first: int, last: int) -> list[tuple[int, int, int, tuple[int, ...]]]:
        """The seconds ``first..last`` that saw requests: ``(second, requests, errors,
        histogram)``, for another process's window to :meth:`merge`."""
        out = []
        for second in range(max(first, last - self.seconds + 1), last + 1):
            i = second % self.seconds
            if self._stamps[i] == second and self._counts[i]:
                out.append((second, self._counts[i], self._errors[i], tuple(self._hist[i])))
        return out

    def merge(self, second: int, requests: int, errors: int, hist: Sequence[int]) -> None:
        """Add another window's slot for ``second`` (same bounds) to this one."""
        i = second % self.seconds
        if self._stamps[i] > second:
            return  # that slot already holds a later second: this one is out of the window
        if self._stamps[i] != second:
            self._stamps[i] = second
            self._counts[i] = 0
            self._errors[i] = 0
            self._hist[i][:] = self._zeros
        self._counts[i] += requests
        self._errors[i] += errors
        row = self._hist[i]
        for j, count in enumerate(hist):
            if count:
                row[j] += count
