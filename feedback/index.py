"""The live join's state: records in, figures per minute of prediction time out (pure: no I/O,
the clock is an argument).

A *prediction* is a ``response_body`` record of a deployment (one with ``deployment_id``); a
*label* is a ``feedback`` record. They join on model name and Request-ID, so a label counts
for every deployment of that model that answered the request: the routed target, and a
mirror's shadow copy. The rules:

- a label is credited to the minute of its **prediction** (late labels land where they
  belong); its delay (feedback time minus prediction time) is kept beside it;
- a label joins a prediction made at most ``feedback_wait`` seconds after it: feedback that
  arrives first (a client-chosen Request-ID) waits, bounded in count (``max_waiting``) and
  time (``feedback_wait`` plus ``grace`` for predictions still on their way through the
  bucket); what expires unjoined is counted as unmatched;
- of several feedbacks for one Request-ID the latest (by ``time_us``, then by content) is the
  label: a correction replaces the earlier one's contribution, whatever order they arrive in;
- a label that cannot be read is counted as invalid with its reason (``feedback.extract``);
- predictions stay joinable, bounded in count (``max_pending``, oldest evicted first and
  counted) and age (``horizon``); figures older than ``horizon`` are dropped.

Every figure is a function of the set of records, not of their order (exact sums, sets of
samples chosen by a hash of the Request-ID), so a rebuild from storage after a restart gives
the same figures, as long as nothing was evicted or expired early.
"""

from __future__ import annotations

import bisect
import calendar
import heapq
import zlib
from array import array
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from .extract import PREDICTION_UNREADABLE, read_label, read_prediction
from .spec import CELL_SECONDS, INFERRED, REGRESSION, QualitySpec

ANY_ROUTE: Any = object()
"""Route filter: every request of the deployment, whichever route (or mirror) sent it."""
MIRROR_PREFIX = "mirror:"
DELAY_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 3 * 3600.0, 12 * 3600.0,
                 86400.0, 3 * 86400.0, 7 * 86400.0)
"""Seconds: the label-delay histogram's upper bounds (+Inf implied)."""


@dataclass(frozen=True)
class JoinLimits:
    max_pending: int = 1_000_000
    """Predictions kept joinable; beyond, the oldest is evicted (counted)."""
    max_waiting: int = 100_000
    """Feedback records waiting for their prediction; beyond, the oldest expires."""
    feedback_wait: int = 600
    """Seconds a prediction may come after its feedback and still join it."""
    grace: int = 30
    """Seconds a waiting feedback is kept past ``feedback_wait`` for predictions on their way."""
    horizon: int = 7 * 86400
    """Seconds of prediction time kept: figures, and predictions still joinable."""
    latency_samples: int = 256
    """Latency samples kept per deployment, route and minute (the lowest Request-ID hashes)."""

    def __post_init__(self) -> None:
        if min(self.max_pending, self.max_waiting, self.latency_samples) < 1:
            raise ValueError("max_pending, max_waiting and latency_samples must be >= 1")
        if min(self.feedback_wait, self.grace) < 0 or self.horizon < CELL_SECONDS:
            raise ValueError("feedback_wait and grace must be >= 0, horizon >= 60")


class Samples:
    """A multiset of floats: appended in O(1), and taken back in O(1) too (a correction) by
    remembering what was taken until the next compaction, so a busy minute's corrections
    do not each scan its samples."""

    __slots__ = ("_taken", "_taken_count", "_values")

    def __init__(self) -> None:
        self._values = array("d")
        self._taken: Counter[float] | None = None
        self._taken_count = 0

    def add(self, value: float) -> None:
        if self._taken and self._taken[value]:
            self._taken[value] -= 1  # put back what was taken: nothing to append
            self._taken_count -= 1
            if not self._taken[value]:
                del self._taken[value]
            return
        self._values.append(value)

    def discard(self, value: float) -> None:
        """Take one ``value`` back (it must have been added)."""
        if self._taken is None:
            self._taken = Counter()
        self._taken[value] += 1
        self._taken_count += 1
        if self._taken_count * 2 > len(self._values):
            self._values = array("d", self.values())
            self._taken = None
            self._taken_count = 0

    def values(self) -> list[float]:
        if not self._taken:
            return list(self._values)
        left = Counter(self._taken)
        out = []
        for value in self._values:
            if left[value]:
                left[value] -= 1
            else:
                out.append(value)
        return out

    def __len__(self) -> int:
        return len(self._values) - self._taken_count


class Cell:
    """What happened in one minute of prediction time for one deployment and route."""

    __slots__ = ("confusion", "delays", "errors", "invalid", "labelled", "latency",
                 "predictions", "requests", "residuals")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0  # 5xx answers
        self.latency: list[tuple[int, float]] = []  # heap of (-hash, seconds): a bottom-k sample
        self.predictions = 0  # 2xx answers
        self.labelled = 0  # predictions with a valid label
        self.invalid: Counter[str] | None = None  # predictions with an invalid label, by reason
        self.residuals: Samples | None = None  # prediction - label, per labelled row
        self.confusion: Counter[tuple[str, str]] | None = None  # (label, predicted) -> rows
        self.delays = Samples()  # label delay (s) per labelled prediction


class Pred:
    __slots__ = ("dep", "minute", "route", "tp", "values")

    def __init__(self, dep: str, route: str, minute: int, tp: int,
                 values: tuple[Any, ...] | None) -> None:
        self.dep = dep
        self.route = route
        self.minute = minute
        self.tp = tp
        self.values = values


class Label:
    __slots__ = ("order", "payload", "read", "tf")

    def __init__(self, order: tuple[int, bytes], tf: int, payload: Any) -> None:
        self.order = order
        self.tf = tf
        self.payload = payload
        self.read: dict[tuple[Any, ...], tuple[Any, str, str]] | None = None
        """What :func:`read_label` answered, per spec and row count (asked again when the
        label is taken back by a correction)."""

    def values(self, rows: int, spec: QualitySpec) -> tuple[Any, str, str]:
        key = (*spec.key, rows)
        if self.read is None:
            self.read = {}
        found = self.read.get(key)
        if found is None:
            found = self.read[key] = read_label(self.payload, rows, spec)
        return found


class Slot:
    __slots__ = ("label", "preds")

    def __init__(self) -> None:
        self.preds: list[Pred] = []
        self.label: Label | None = None


@dataclass
class Seen:
    """What a deployment's records showed, for its ``status.quality``."""

    predictions: Counter[str] = field(default_factory=Counter)  # JSONPath used -> count
    problems: Counter[str] = field(default_factory=Counter)  # why a prediction was unreadable
    labels: Counter[str] = field(default_factory=Counter)  # label JSONPath used -> count


@dataclass
class JoinStats:
    """Counters for Prometheus (events since this index was built)."""

    joined: Counter[str] = field(default_factory=Counter)
    corrections: Counter[str] = field(default_factory=Counter)
    invalid: Counter[tuple[str, str]] = field(default_factory=Counter)
    unmatched: int = 0
    evicted: int = 0
    delays: dict[str, list[float]] = field(default_factory=dict)
    """Per deployment: counts per :data:`DELAY_BUCKETS` bucket, then +Inf, then the sum."""

    def observe_delay(self, dep: str, seconds: float) -> None:
        counts = self.delays.get(dep)
        if counts is None:
            counts = self.delays[dep] = [0.0] * (len(DELAY_BUCKETS) + 2)
        counts[bisect.bisect_left(DELAY_BUCKETS, seconds)] += 1  # the first bound >= seconds
        counts[-1] += seconds


_last_time: tuple[str, int] = ("", 0)


def record_epoch(text: str) -> int:
    """Seconds since the epoch of a record's ``time`` (``YYYY-MM-DD HH:MM:SS +0000``)."""
    global _last_time
    if _last_time[0] == text:
        return _last_time[1]
    if len(text) == 25 and text.endswith(" +0000"):
        epoch = calendar.timegm((int(text[0:4]), int(text[5:7]), int(text[8:10]),
                                 int(text[11:13]), int(text[14:16]), int(text[17:19])))
    else:
        epoch = int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S %z").timestamp())
    _last_time = (text, epoch)
    return epoch


def sample_hash(request_id: str) -> int:
    return zlib.crc32(request_id.encode())


class QualityIndex:
    def __init__(self, specs: Mapping[str, QualitySpec] | None = None,
                 limits: JoinLimits | None = None) -> None:
        self.specs = dict(specs or {})
        self.limits = limits or JoinLimits()
        self.cells: dict[tuple[str, str], dict[int, Cell]] = {}
        self.slots: dict[str, Slot] = {}
        self._order: deque[str] = deque()
        self.waiting: dict[str, tuple[Label, int]] = {}
        """Feedback without its prediction yet: the label and the sequence number of its
        entry in ``_deadlines`` (older entries for the same key are stale)."""
        self._deadlines: list[tuple[int, int, str]] = []
        self._seq = 0
        self.seen: dict[str, Seen] = {}
        self.models: set[str] = set()
        """Model names whose feedback is taken (the rest is not this index's business)."""
        self.stats = JoinStats()

    def spec(self, dep: str) -> QualitySpec:
        return self.specs.get(dep, INFERRED)

    # -- records in ----------------------------------------------------------------------------

    def add_prediction(self, record: Mapping[str, Any]) -> None:
        """A ``response_body`` record (ignored without ``deployment_id``)."""
        dep = record.get("deployment_id")
        request_id = record.get("request_id")
        if not isinstance(dep, str) or not isinstance(request_id, str):
            return
        try:
            tp = record_epoch(record["time"])
            status = int(record.get("response_status") or 0)
        except (KeyError, TypeError, ValueError):
            return
        route = record.get("route_id") or ""
        if record.get("mirror"):
            route = MIRROR_PREFIX + route
        minute = tp - tp % CELL_SECONDS
        cell = self._cell(dep, route, minute)
        cell.requests += 1
        if status >= 500:
            cell.errors += 1
        upstream_ms = record.get("upstream_ms")
        if isinstance(upstream_ms, int | float):
            self._sample_latency(cell, sample_hash(request_id), upstream_ms / 1000)
        if not 200 <= status < 300:
            return
        cell.predictions += 1
        model = record.get("model_name")
        if not isinstance(model, str):
            return
        self.models.add(model)
        values, path, problem = read_prediction(record.get("response_content"), self.spec(dep))
        seen = self._seen(dep)
        if values is None:
            seen.problems[problem] += 1
        else:
            seen.predictions[path] += 1
        pred = Pred(dep, route, minute, tp, values)
        key = f"{model}\0{request_id}"
        slot = self.slots.get(key)
        if slot is None:
            slot = self._new_slot(key)
            waiting = self.waiting.get(key)
            if waiting is not None and self._joinable(tp, waiting[0]):
                del self.waiting[key]
                slot.label = waiting[0]
        slot.preds.append(pred)
        if slot.label is not None and self._joinable(tp, slot.label):
            self._credit(pred, slot.label, 1, first=True)

    def add_feedback(self, record: Mapping[str, Any], now: float) -> None:
        """A ``feedback`` record; ``now`` (epoch seconds) times how long it may wait."""
        model, request_id = record.get("model_name"), record.get("request_id")
        if model not in self.models or not isinstance(request_id, str):
            return
        try:
            tf = record_epoch(record["time"])
        except (KeyError, TypeError, ValueError):
            return
        payload = (record.get("payload") or {}).get("json")
        time_us = record.get("time_us")
        order = (time_us if isinstance(time_us, int) else tf * 1_000_000,
                 orjson.dumps(payload, option=orjson.OPT_SORT_KEYS))
        label = Label(order, tf, payload)
        key = f"{model}\0{request_id}"
        slot = self.slots.get(key)
        if slot is None:
            self._wait(key, label, now)
            return
        old = slot.label
        if old is not None and label.order <= old.order:
            return  # an earlier feedback, or the same one again: the later one stands
        slot.label = label
        joined = False
        for pred in slot.preds:
            was = old is not None and self._joinable(pred.tp, old)
            if was:
                self._credit(pred, old, -1)
            if self._joinable(pred.tp, label):
                self._credit(pred, label, 1, first=not was)
                joined = True
                if was:
                    self.stats.corrections[pred.dep] += 1
        if not joined and old is None:
            self.stats.unmatched += 1

    def sweep(self, now: float) -> None:
        """Expire waiting feedback, evict predictions and drop figures beyond the horizon."""
        while self._deadlines and self._deadlines[0][0] < now:
            self._expire(heapq.heappop(self._deadlines))
        cutoff = now - self.limits.horizon
        while self._order and self._slot_older(self._order[0], cutoff):
            self._evict(self._order.popleft())
        for cells in self.cells.values():
            for minute in [m for m in cells if m < cutoff - CELL_SECONDS]:
                del cells[minute]
        for key in [k for k, v in self.cells.items() if not v]:
            del self.cells[key]

    # -- reading -------------------------------------------------------------------------------

    def cells_of(self, dep: str, since: int, until: int,
                 route: Any = ANY_ROUTE) -> Iterator[tuple[int, Cell]]:
        """Cells of ``dep`` whose minute starts in ``[since, until)``; ``route``: ``ANY_ROUTE``,
        ``""`` (the default route), a route id, or ``mirror:<route id>``."""
        for (cell_dep, cell_route), cells in self.cells.items():
            if cell_dep != dep or (route is not ANY_ROUTE and cell_route != route):
                continue
            if len(cells) <= (until - since) // CELL_SECONDS:
                yield from ((m, c) for m, c in cells.items() if since <= m < until)
            else:
                first = since + (-since) % CELL_SECONDS
                for minute in range(first, until, CELL_SECONDS):
                    cell = cells.get(minute)
                    if cell is not None:
                        yield minute, cell

    def routes_of(self, dep: str) -> list[str]:
        return sorted(route for d, route in self.cells if d == dep)

    # -- internals -----------------------------------------------------------------------------

    def _cell(self, dep: str, route: str, minute: int) -> Cell:
        cells = self.cells.get((dep, route))
        if cells is None:
            cells = self.cells[(dep, route)] = {}
        cell = cells.get(minute)
        if cell is None:
            cell = cells[minute] = Cell()
        return cell

    def _seen(self, dep: str) -> Seen:
        seen = self.seen.get(dep)
        if seen is None:
            seen = self.seen[dep] = Seen()
        return seen

    def _sample_latency(self, cell: Cell, h: int, seconds: float) -> None:
        item = (-h, seconds)
        if len(cell.latency) < self.limits.latency_samples:
            heapq.heappush(cell.latency, item)
        elif item > cell.latency[0]:
            heapq.heapreplace(cell.latency, item)

    def _joinable(self, tp: int, label: Label) -> bool:
        return tp <= label.tf + self.limits.feedback_wait

    def _new_slot(self, key: str) -> Slot:
        if len(self.slots) >= self.limits.max_pending:
            while self._order and len(self.slots) >= self.limits.max_pending:
                self._evict(self._order.popleft())
        slot = self.slots[key] = Slot()
        self._order.append(key)
        return slot

    def _slot_older(self, key: str, cutoff: float) -> bool:
        slot = self.slots.get(key)
        return slot is None or all(p.tp < cutoff for p in slot.preds)

    def _evict(self, key: str) -> None:
        if self.slots.pop(key, None) is not None:
            self.stats.evicted += 1

    def _wait(self, key: str, label: Label, now: float) -> None:
        current = self.waiting.get(key)
        if current is not None and label.order <= current[0].order:
            return
        self._seq += 1
        self.waiting[key] = (label, self._seq)
        deadline = label.tf + self.limits.feedback_wait + self.limits.grace
        heapq.heappush(self._deadlines, (max(deadline, int(now)), self._seq, key))
        while len(self.waiting) > self.limits.max_waiting and self._deadlines:
            self._expire(heapq.heappop(self._deadlines))
        if len(self._deadlines) > 2 * len(self.waiting) + 1024:  # drop stale entries
            live = {seq for _label, seq in self.waiting.values()}
            self._deadlines = [e for e in self._deadlines if e[1] in live]
            heapq.heapify(self._deadlines)

    def _expire(self, entry: tuple[int, int, str]) -> None:
        _deadline, seq, key = entry
        current = self.waiting.get(key)
        if current is None or current[1] != seq:
            return  # joined meanwhile, or replaced by a newer feedback with its own entry
        del self.waiting[key]
        self.stats.unmatched += 1

    def _credit(self, pred: Pred, label: Label, sign: int, first: bool = False) -> None:
        """Add (``sign`` 1) or take back (-1) what ``label`` says about ``pred``."""
        cells = self.cells.get((pred.dep, pred.route))
        cell = cells.get(pred.minute) if cells is not None else None
        if cell is None:
            return  # beyond the horizon already
        spec = self.spec(pred.dep)
        if pred.values is None:
            self._invalid(cell, pred.dep, PREDICTION_UNREADABLE, sign)
            return
        labels, path, reason = label.values(len(pred.values), spec)
        if labels is None:
            self._invalid(cell, pred.dep, reason, sign)
            return
        if sign > 0:
            self._seen(pred.dep).labels[path] += 1
        cell.labelled += sign
        delay = float(max(0, label.tf - pred.tp))
        if sign > 0:
            cell.delays.add(delay)
        else:
            cell.delays.discard(delay)
        if (spec.task or REGRESSION) == REGRESSION:
            if cell.residuals is None:
                cell.residuals = Samples()
            for p, y in zip(pred.values, labels, strict=True):
                if sign > 0:
                    cell.residuals.add(p - y)
                else:
                    cell.residuals.discard(p - y)
        else:
            if cell.confusion is None:
                cell.confusion = Counter()
            for p, y in zip(pred.values, labels, strict=True):
                cell.confusion[(y, p)] += sign
                if not cell.confusion[(y, p)]:
                    del cell.confusion[(y, p)]
        if sign > 0 and first:
            self.stats.joined[pred.dep] += 1
            self.stats.observe_delay(pred.dep, delay)

    def _invalid(self, cell: Cell, dep: str, reason: str, sign: int) -> None:
        if cell.invalid is None:
            cell.invalid = Counter()
        cell.invalid[reason] += sign
        if not cell.invalid[reason]:
            del cell.invalid[reason]
        if sign > 0:
            self.stats.invalid[(dep, reason)] += 1
