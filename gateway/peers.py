"""What the other gateway processes observed, folded into the primary's answers.

With ``mlgate up --workers N`` each process counts its own requests (metrics,
status windows, storage writer). ``/metrics`` and the status page are answered
by the primary only (workers forward those paths), so each worker sends the
primary a :class:`PeerReport` every second and the primary adds them to its own:

* counters and histograms of the per-request families, sample by sample (the
  same series in several processes sum; a series one process has is kept);
* the status windows' completed seconds, merged slot by slot;
* the storage writers' counters and spool gauges, summed.

A worker that exits leaves its last counters behind (:meth:`Peers.retire`), so a
restarted worker counting from zero never makes a total go down (Prometheus
would read that as a counter reset).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from storage import WriterStats

from .refusals import FAMILIES as REFUSAL_FAMILIES

PEER_FAMILIES = frozenset({
    "mlgate_requests", "mlgate_request_duration_seconds", "mlgate_upstream_duration_seconds",
    "mlgate_gateway_overhead_seconds", "mlgate_feedback_received", "mlgate_cold_start_requests",
}) | REFUSAL_FAMILIES
WriterGauges = ("spool_bytes", "spool_segments", "queue_length", "queue_capacity")

Slot = tuple[int, int, int, tuple[int, ...]]


@dataclass(slots=True)
class PeerReport:
    families: list[Any]
    """prometheus-client ``Metric`` objects of :data:`PEER_FAMILIES`, cumulative."""
    windows: dict[str, list[Slot]] = field(default_factory=dict)
    """Per deployment id, the completed seconds since the previous report."""
    writer: WriterStats | None = None


def merge_families(own: Iterable[Any], others: Sequence[Iterable[Any]]) -> list[Any]:
    """``own`` families with the samples of ``others`` added (pure; inputs untouched)."""
    extra: dict[str, list[Any]] = {}
    for families in others:
        for family in families:
            extra.setdefault(family.name, []).append(family)
    out = []
    for family in own:
        peers = extra.get(family.name)
        if not peers:
            out.append(family)
            continue
        merged = _copy(family)
        index: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        samples = []
        for sample in family.samples:
            index[(sample.name, tuple(sorted(sample.labels.items())))] = len(samples)
            samples.append(sample)
        for peer in peers:
            for sample in peer.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                at = index.get(key)
                if at is None:
                    index[key] = len(samples)
                    samples.append(sample)
                else:
                    samples[at] = samples[at]._replace(value=samples[at].value + sample.value)
        merged.samples = samples
        out.append(merged)
    return out


def _copy(family: Any) -> Any:
    """A shallow copy of a prometheus-client ``Metric`` (its samples list is replaced)."""
    clone = type(family).__new__(type(family))
    clone.__dict__.update(family.__dict__)
    return clone


def sum_writer_stats(stats: Iterable[WriterStats]) -> WriterStats:
    total = WriterStats()
    for s in stats:
        for name in ("spooled", "written", "dropped", "refused", "drop_reasons"):
            mine = getattr(total, name)
            for kind, value in getattr(s, name).items():
                mine[kind] += value
        for name in ("objects", "upload_failures", "spool_syncs", "torn_lines",
                     "spool_bytes", "spool_segments", "queue_length", "queue_capacity"):
            setattr(total, name, getattr(total, name) + getattr(s, name))
    return total


class Peers:
    """The primary's record of its workers' reports."""

    def __init__(self) -> None:
        self.latest: dict[int, PeerReport] = {}
        self.retired_families: list[Any] = []
        self.retired_writer = WriterStats()

    def take(self, index: int, report: PeerReport) -> None:
        self.latest[index] = report

    def retire(self, index: int) -> None:
        """Worker ``index`` exited: keep its counters, forget its gauges."""
        last = self.latest.pop(index, None)
        if last is None:
            return
        self.retired_families = merge_families(last.families, [self.retired_families]) \
            if self.retired_families else list(last.families)
        if last.writer is not None:
            gone = dataclasses.replace(last.writer)
            for name in WriterGauges:
                setattr(gone, name, 0)
            self.retired_writer = sum_writer_stats([self.retired_writer, gone])

    def families(self) -> list[list[Any]]:
        out = [r.families for r in self.latest.values()]
        if self.retired_families:
            out.append(self.retired_families)
        return out

    def writer_stats(self) -> list[WriterStats]:
        return [self.retired_writer, *(r.writer for r in self.latest.values() if r.writer)]

    def __bool__(self) -> bool:
        return bool(self.latest) or bool(self.retired_families)
