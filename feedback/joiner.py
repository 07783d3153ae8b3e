"""The live join's I/O shell: records from the bucket and from this process's writer into a
:class:`~feedback.index.QualityIndex`.

The bucket is where every record meets, whichever process wrote it (gateway workers,
sidecars, feedback pods of a cluster), so the joiner reads it:

- at start, every ``response_body`` and ``feedback`` object of the known models within the
  horizon (predictions first, so feedback finds them): the figures are rebuilt;
- every ``poll_interval`` seconds, the objects of the current and previous hour of each
  known model version; every ``rescan_interval`` seconds the last day again (late uploads,
  feedback for versions no deployment has). An object uploaded later than that into an
  older hour (a spool left for days by a crashed worker) is read at the next start.

Records this process writes come faster, through the writer's *tap*, with the key of the
object they will be uploaded as and their line in it. Per object the joiner remembers which
lines it has taken, so a record is counted once however it arrives: through the tap, in a
listing, or in an object uploaded twice under the same key (the spool's at-least-once
retries).

A change of a deployment's ``spec.quality`` (what the figures depend on) builds a new index
from the bucket in the background while the old one keeps answering; records tapped
meanwhile go to both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from storage import FEEDBACK, RESPONSE_BODY, Backend, ObjectNotFound, StorageError, object_hour

from .index import JoinLimits, QualityIndex
from .spec import QualitySpec

log = logging.getLogger("mlgate.feedback")

KINDS = (RESPONSE_BODY, FEEDBACK)
HOUR = 3600
RESCAN_DEPTH = 24 * HOUR
MODELS_ASK_INTERVAL = 0.2
"""How far back the periodic rescan lists (the first scan covers the whole horizon)."""


@dataclass(frozen=True)
class DeploymentInfo:
    """What the joiner needs to know of a deployment (the control plane has it)."""

    id: str
    model_name: str
    model_version: str
    spec: QualitySpec | None = None
    """Its ``spec.quality``; None: everything inferred."""


Deployments = Callable[[], Sequence[DeploymentInfo]]


@dataclass(frozen=True)
class JoinerConfig:
    limits: JoinLimits = field(default_factory=JoinLimits)
    poll_interval: float = 2.0
    rescan_interval: float = 300.0
    read_concurrency: int = 8

    def __post_init__(self) -> None:
        if self.poll_interval <= 0 or self.rescan_interval <= 0 or self.read_concurrency < 1:
            raise ValueError("poll_interval and rescan_interval must be > 0, "
                             "read_concurrency >= 1")


class _Lines:
    """The lines of one object a target has taken so far: half-open ranges, merged."""

    __slots__ = ("ranges", "tapped")

    def __init__(self, tapped: bool) -> None:
        self.tapped = tapped  # first seen through the tap: its lines came in order
        self.ranges: list[list[int]] = []

    def has(self, line: int) -> bool:
        return any(lo <= line < hi for lo, hi in self.ranges)

    def add(self, lo: int, hi: int) -> None:
        self.ranges.append([lo, hi])
        self.ranges.sort()
        merged = [self.ranges[0]]
        for r in self.ranges[1:]:
            if r[0] <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], r[1])
            else:
                merged.append(r)
        self.ranges = merged

    def all_tapped(self) -> bool:
        """Every line of the object came through the tap (so it need not be read)."""
        return self.tapped and len(self.ranges) == 1 and self.ranges[0][0] == 0


class _Target:
    """An index, the objects it has taken whole (by hour) and those it has taken lines of."""

    def __init__(self, specs: dict[str, QualitySpec], limits: JoinLimits) -> None:
        self.index = QualityIndex(specs, limits)
        self.partial: dict[str, _Lines] = {}
        self.done: dict[int, set[str]] = {}
        self.spec_keys = {dep: spec.key for dep, spec in specs.items()}

    def is_done(self, key: str) -> bool:
        return key in self.done.get(_hour_of(key), ())

    def finish(self, key: str) -> None:
        self.partial.pop(key, None)
        self.done.setdefault(_hour_of(key), set()).add(key)


def _hour_of(key: str) -> int:
    when = object_hour(key)
    return int(when.timestamp()) if when is not None else 0


class Joiner:
    def __init__(self, backend: Backend, prefix: str, deployments: Deployments,
                 config: JoinerConfig | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.backend = backend
        self.prefix = prefix.strip("/")
        self.deployments = deployments
        self.config = config or JoinerConfig()
        self.clock = clock
        self._targets = [_Target(self._specs(deployments()), self.config.limits)]
        self._versions: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None
        self._rebuild: asyncio.Task[None] | None = None
        self._scanning = False
        self._models_asked = float("-inf")
        self.complete = False
        """The figures cover the whole horizon (the first scan of the bucket is done)."""
        self.rebuilding = False
        """A new index is being built for changed specs (the current one still answers)."""

    @property
    def index(self) -> QualityIndex:
        return self._targets[0].index

    # -- the writer's tap ----------------------------------------------------------------------

    def tap(self, kind: str, key: str, first: int, records: list[dict[str, Any]]) -> None:
        """``storage.Tap``: records just appended to this process's spool."""
        if kind not in KINDS:
            return
        now = self.clock()
        for target in self._targets:
            lines = target.partial.get(key)
            if lines is None:
                lines = target.partial[key] = _Lines(tapped=True)
            for n, record in enumerate(records):
                if not lines.has(first + n):
                    self._ingest(target.index, kind, record, now)
            lines.add(first, first + len(records))

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mlgate-quality-join")

    async def close(self) -> None:
        for task in (self._rebuild, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._rebuild = None

    async def _run(self) -> None:
        started = time.monotonic()
        self._follow_specs()
        await self._scan(self._targets[0], whole=True, depth=self.config.limits.horizon)
        self.complete = True
        self._log_scan("rebuilt", started)
        last_rescan = time.monotonic()
        while True:
            await asyncio.sleep(self.config.poll_interval)
            try:
                self._follow_specs()
                whole = time.monotonic() - last_rescan >= self.config.rescan_interval
                if whole:
                    last_rescan = time.monotonic()
                await self._scan(self._targets[0], whole=whole)
                now = self.clock()
                current = self._targets[0]  # one being rebuilt is swept once it is complete
                current.index.sweep(now)
                for hour in [h for h in current.done if h < now - RESCAN_DEPTH - 2 * HOUR]:
                    del current.done[hour]
            except Exception:  # keep joining; the next round retries
                log.exception("the quality join failed a round")

    def _log_scan(self, what: str, started: float) -> None:
        index = self.index
        log.info("quality figures %s from storage in %.1fs: %d predictions joinable, "
                 "%d feedback waiting", what, time.monotonic() - started, len(index.slots),
                 len(index.waiting))

    # -- specs ---------------------------------------------------------------------------------

    @staticmethod
    def _specs(infos: Iterable[DeploymentInfo]) -> dict[str, QualitySpec]:
        return {d.id: d.spec for d in infos if d.spec is not None}

    def _follow_specs(self) -> None:
        infos = self.deployments()
        specs = self._specs(infos)
        for info in infos:
            if info.model_name:
                for target in self._targets:
                    target.index.models.add(info.model_name)
                if info.model_version:
                    self._versions.add((info.model_name, info.model_version))
        current = self._targets[-1]
        keys = {dep: spec.key for dep, spec in specs.items()}
        if keys == current.spec_keys:
            for target in self._targets:  # only windows changed, if anything
                target.index.specs = dict(specs)
            return
        if self._rebuild is not None:
            self._rebuild.cancel()
        target = _Target(specs, self.config.limits)
        target.index.models |= self.index.models
        self._targets = [self._targets[0], target]
        self.rebuilding = True
        self._rebuild = asyncio.create_task(self._build(target), name="mlgate-quality-rebuild")

    async def _build(self, target: _Target) -> None:
        started = time.monotonic()
        try:
            await self._scan(target, whole=True, depth=self.config.limits.horizon)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("rebuilding the quality figures failed; retrying at the next poll")
            self._targets = [t for t in self._targets if t is not target]
            self.rebuilding = False
            return
        self._targets = [target]
        self.rebuilding = False
        self._log_scan("rebuilt for changed spec.quality", started)

    # -- reading the bucket --------------------------------------------------------------------

    def _model_names(self) -> set[str]:
        names = {d.model_name for d in self.deployments() if d.model_name}
        return names | {name for name, _ in self._versions} | self.index.models

    async def _list_keys(self, whole: bool, depth: float) -> list[str]:
        now = self.clock()
        keys: list[str] = []
        head = f"{self.prefix}/" if self.prefix else ""
        if whole:
            for kind in KINDS:
                for name in sorted(self._model_names()):
                    keys += await self.backend.list(f"{head}{kind}/{name}/")
            oldest = now - min(depth, self.config.limits.horizon) - HOUR
            return [k for k in keys if _hour_of(k) >= oldest]
        hours = [datetime.fromtimestamp(now - now % HOUR, UTC) - timedelta(hours=back)
                 for back in (1, 0)]
        for kind in KINDS:
            for name, version in sorted(self._versions):
                for hour in hours:
                    keys += await self.backend.list(
                        f"{head}{kind}/{name}/{version}/year={hour:%Y}/month={hour:%m}/"
                        f"day={hour:%d}/{hour:%Y%m%d%H}_")
        return keys

    async def _scan(self, target: _Target, whole: bool, depth: float = RESCAN_DEPTH) -> None:
        """Read what ``target`` has not taken of the listed objects (predictions first)."""
        try:
            keys = await self._list_keys(whole, depth)
        except StorageError as exc:
            log.warning("cannot list the bucket for the quality join (retrying): %s", exc)
            return
        todo: dict[str, list[str]] = {kind: [] for kind in KINDS}
        for key in keys:
            kind = self._kind_of(key)
            if kind not in todo or target.is_done(key):
                continue
            lines = target.partial.get(key)
            if lines is not None and lines.all_tapped():
                target.finish(key)  # listed, so sealed: every line came through the tap
            else:
                todo[kind].append(key)
        limit = asyncio.Semaphore(self.config.read_concurrency)
        for kind in KINDS:
            fetches = [asyncio.create_task(self._fetch(key, limit)) for key in todo[kind]]
            try:
                for key, fetch in zip(todo[kind], fetches, strict=True):
                    data = await fetch
                    if data is not None:
                        self._take(target, kind, key, data)
                        await asyncio.sleep(0)
            finally:
                for fetch in fetches:
                    fetch.cancel()

    async def _fetch(self, key: str, limit: asyncio.Semaphore) -> bytes | None:
        async with limit:
            try:
                return await self.backend.get(key)
            except ObjectNotFound:
                return None
            except StorageError as exc:
                log.warning("cannot read %s for the quality join (retrying): %s", key, exc)
                return None

    def _take(self, target: _Target, kind: str, key: str, data: bytes) -> None:
        if target.is_done(key):
            return
        lines = target.partial.get(key) or _Lines(tapped=False)
        now = self.clock()
        for n, line in enumerate(data.splitlines()):
            if lines.has(n) or not line.strip():
                continue
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict):
                self._ingest(target.index, kind, record, now)
        target.finish(key)

    def _ingest(self, index: QualityIndex, kind: str, record: dict[str, Any], now: float) -> None:
        if kind == RESPONSE_BODY:
            name, version = record.get("model_name"), record.get("model_version")
            if isinstance(name, str) and isinstance(version, str) and \
                    (name, version) not in self._versions:
                self._versions.add((name, version))
            index.add_prediction(record)
        else:
            if record.get("model_name") not in index.models:
                self._learn_models()
            index.add_feedback(record, now)

    def _learn_models(self) -> None:
        """Feedback for a model the index does not know: the control plane may know it since
        the last poll (a deployment that just became Ready; this process's own feedback can
        reach the join before its prediction, which is spooled in batches). Asked at most
        every ``MODELS_ASK_INTERVAL`` seconds, so unknown names cannot flood the store."""
        now = time.monotonic()
        if now - self._models_asked < MODELS_ASK_INTERVAL:
            return
        self._models_asked = now
        names = {d.model_name for d in self.deployments() if d.model_name}
        for target in self._targets:
            target.index.models |= names

    def _kind_of(self, key: str) -> str:
        rest = key[len(self.prefix) + 1:] if self.prefix else key
        return rest.split("/", 1)[0]
