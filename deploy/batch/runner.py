"""One runner: a job's share of the input objects, read, predicted, written, reported.

The shell around the pure plan (:mod:`deploy.control.job_plan`):

1. list the input and the output; objects whose output exists are done (their rows are
   counted from the output and ``_errors/`` objects), the rest are this run's work (with
   ``retry_errors``, also the objects that have an ``_errors/`` object: only its rows);
2. count the rows of the work, so progress has a total (objects are kept in memory up to
   ``read_ahead_bytes`` so they are read once);
3. predict each object in batches of ``batchSize`` rows, ``concurrency`` calls in flight
   over all objects, objects overlapping so the calls never wait for a read;
4. commit each object when every row of it is answered: first its ``_errors/`` object (or
   the removal of a stale one), then its output object. Both writes are atomic, and the
   output object's existence is what "done" means, so a runner killed at any point and
   run again redoes only uncommitted objects and writes every row exactly once.

Progress goes to ``report`` (the process's stdout as JSON lines, see
:mod:`deploy.batch.events`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from deploy.batch.caller import CallResult, JobAbort, ModelCaller, Predicted
from deploy.batch.events import Report
from deploy.batch.formats import (
    OUTPUT_LEAD,
    Table,
    UnreadableObject,
    columns_of,
    count_rows,
    read_output,
    read_table,
    without_columns,
    write_table,
)
from deploy.batch.locations import Place
from deploy.batch.tally import committed_counts, listed_errors, output_rows
from deploy.control.job_plan import (
    MODE_RETRY,
    Counts,
    ObjectTask,
    batches,
    errors_name,
    merge_rows,
    object_of_errors,
    over_error_ceiling,
    plan_objects,
    relative_names,
    request_id,
)
from storage import ObjectNotFound, StorageError

log = logging.getLogger("mlgate.batch")
COUNT_CONCURRENCY = 8


@dataclass(frozen=True)
class RunnerConfig:
    job_id: str
    format: str
    batch_size: int
    concurrency: int
    max_error_rate: float
    name_prefix: str
    shard: int = 0
    shards: int = 1
    retry_errors: bool = False
    drop_columns: tuple[str, ...] = ()
    read_ahead_bytes: int = 256 << 20
    progress_interval: float = 0.5


@dataclass
class _Work:
    """One object's rows, predictions and errors until it is committed."""

    task: ObjectTask
    table: Table
    wanted: list[int]
    """Indexes into ``table.rows`` this run predicts (all, or the listed ones on retry)."""
    predictions: list[tuple[list[int], Predicted]] = field(default_factory=list)
    """Each call's answer with the positions of its rows."""
    errors: dict[int, dict[str, Any]] = field(default_factory=dict)
    columns: list[str] | None = None


class Runner:
    def __init__(self, config: RunnerConfig, source: Place, target: Place, caller: ModelCaller,
                 report: Callable[[Report], None]) -> None:
        self.config = config
        self.source = source
        self.target = target
        self.caller = caller
        self.report = report
        self.counts = Counts()
        self.predicted = 0
        """Rows this run predicted (a counter: rows redone after a crash count again)."""
        self.refused = 0
        self._cache: dict[str, bytes] = {}
        self._cached = 0
        self._started = time.monotonic()
        self._last_report = 0.0

    # -- the run --------------------------------------------------------------------------------

    async def run(self) -> Counts:
        """Do this runner's share; the final counts. :class:`JobAbort` when the job must stop."""
        c = self.config
        names = relative_names(await self.source.names(c.name_prefix), c.name_prefix)
        present = await self.target.names()
        errors = [n for n in map(object_of_errors, present) if n is not None]
        plan = plan_objects(names, present, errors, c.shard, c.shards, c.retry_errors)
        counts = Counts(objects_total=len(plan.todo) + len(plan.done))
        for name in plan.done:
            counts += await self._storage(
                committed_counts(self.target, c.format, name, name in errors), "read", name)
        self.counts = counts
        self._emit(force=True)
        counting = asyncio.Semaphore(COUNT_CONCURRENCY)

        async def count(task: ObjectTask) -> bool:
            async with counting:
                return await self._count(task)

        wanted = await asyncio.gather(*(count(task) for task in plan.todo))
        todo = [task for task, want in zip(plan.todo, wanted, strict=True) if want]
        self._emit(force=True)
        ahead = asyncio.Semaphore(c.concurrency + 1)  # objects read and in flight at once
        ticker = asyncio.create_task(self._tick())
        try:
            async with asyncio.TaskGroup() as group:
                for task in todo:
                    await ahead.acquire()
                    group.create_task(self._object(task, ahead))
        except* JobAbort as abort:
            raise abort.exceptions[0] from None
        finally:
            ticker.cancel()
        self._emit(force=True)
        return self.counts

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.config.progress_interval)
            self._emit()

    def _emit(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_report < self.config.progress_interval / 2:
            return
        self._last_report = now
        self.report(Report(self.counts, self.predicted, self.refused,
                           self.predicted / max(now - self._started, 1e-9)))

    def _add(self, **delta: int) -> None:
        self.counts = replace(self.counts, **{k: getattr(self.counts, k) + v
                                              for k, v in delta.items()})

    # -- planning ---------------------------------------------------------------------------------

    async def _count(self, task: ObjectTask) -> bool:
        """Add the task's rows to the totals; False when there is nothing to predict."""
        if task.mode == MODE_RETRY:
            listed = await self._storage(listed_errors(self.target, task.name), "read",
                                         task.name)
            rows = [e for e in listed if e.get("row") is not None]
            done = await self._storage(output_rows(self.target, self.config.format, task.name),
                                       "read", task.name)
            self._add(objects_done=1, rows_total=len(done) + len(rows), rows_done=len(done),
                      rows_failed=len(rows))
            return bool(rows)
        data = await self._storage(self.source.read(task.name), "read", task.name)
        if self._cached + len(data) <= self.config.read_ahead_bytes:
            self._cache[task.name] = data
            self._cached += len(data)
        try:
            self._add(rows_total=count_rows(self.config.format, data))
        except UnreadableObject:
            pass  # reported when the object is read for prediction
        return True

    # -- one object ---------------------------------------------------------------------------

    async def _object(self, task: ObjectTask, ahead: asyncio.Semaphore) -> None:
        try:
            work = await self._read(task)
            if work is not None:
                await asyncio.gather(*(self._batch(work, rows) for rows in
                                       _chunks(work.wanted, self.config.batch_size)))
                await self._commit(work)
        finally:
            ahead.release()
        reason = over_error_ceiling(self.counts, self.config.max_error_rate)
        if reason:
            raise JobAbort(reason)

    async def _read(self, task: ObjectTask) -> _Work | None:
        data = self._cache.pop(task.name, None)
        if data is not None:
            self._cached -= len(data)
        else:
            data = await self._storage(self.source.read(task.name), "read", task.name)
        try:
            table = without_columns(read_table(self.config.format, data),
                                    self.config.drop_columns)
        except UnreadableObject as exc:
            await self._unreadable(task, str(exc), data)
            return None
        if task.mode == MODE_RETRY:
            listed = {e["row"] for e in await self._storage(
                listed_errors(self.target, task.name), "read", task.name)
                      if e.get("row") is not None}
            wanted = [i for i, p in enumerate(table.positions) if p in listed]
            work = _Work(task, table, wanted)
            work.errors = {b.position: self._bad_row(task.name, b.position, b.raw, b.reason)
                           for b in table.bad if b.position in listed}
            return work
        work = _Work(task, table, list(range(len(table.rows))))
        work.errors = {b.position: self._bad_row(task.name, b.position, b.raw, b.reason)
                       for b in table.bad}
        if table.bad:
            self._add(rows_failed=len(table.bad))
            self.refused += len(table.bad)
        return work

    async def _unreadable(self, task: ObjectTask, reason: str, data: bytes) -> None:
        """The whole object is listed in its errors object, with no output: every run tries
        it again (it may have been fixed), and it counts as failed meanwhile."""
        try:
            rows = count_rows(self.config.format, data)
        except UnreadableObject:
            rows = 0
        log.warning("%s: cannot read %s: %s", self.config.job_id, task.name, reason)
        entry = {"object": task.name, "row": None, "error": f"cannot read the object: {reason}",
                 "status": None}
        await self._write(errors_name(task.name), orjson.dumps(entry) + b"\n")
        self._add(objects_failed=1, rows_total=-rows)

    def _bad_row(self, name: str, position: int, raw: Any, reason: str) -> dict[str, Any]:
        return {"object": name, "row": position, "input": raw,
                "error": f"cannot read the row: {reason}", "status": None}

    async def _batch(self, work: _Work, indexes: list[int]) -> None:
        table, name, job_id = work.table, work.task.name, self.config.job_id
        rows = [table.rows[i] for i in indexes]
        positions = [table.positions[i] for i in indexes]
        result: CallResult = await self.caller.predict(
            table.columns, rows, lambda i: request_id(job_id, name, positions[i]))
        work.columns = work.columns or result.columns
        for p in result.predicted:
            work.predictions.append((positions, p))
        for e in result.errors:
            i = indexes[e.index]
            work.errors[table.positions[i]] = {
                "object": name, "row": table.positions[i],
                "input": dict(zip(table.columns, table.rows[i], strict=True)),
                "error": e.message, "status": e.status, "request_id": e.request_id}
        done, failed = result.rows, len(result.errors)
        self.predicted += done
        self.refused += failed
        if work.task.mode == MODE_RETRY:
            self._add(rows_done=done, rows_failed=-done)
        else:
            self._add(rows_done=done, rows_failed=failed)
        self._emit()

    async def _commit(self, work: _Work) -> None:
        name, fmt = work.task.name, self.config.format
        columns = [*OUTPUT_LEAD, *(work.columns or [])]
        data = output_columns(work.predictions, len(columns))
        if work.task.mode == MODE_RETRY:
            try:
                old_columns, existing = read_output(fmt, await self._storage(
                    self.target.read(name), "read", name))
            except (UnreadableObject, ObjectNotFound):
                old_columns, existing = columns, {}
            if work.columns is None:
                columns = old_columns
            new = {int(r[0]): list(r) for r in zip(*data, strict=True)}
            data = columns_of(merge_rows(existing, new), len(columns))
        errors = [work.errors[p] for p in sorted(work.errors)]
        output = write_table(fmt, columns, data)
        if work.task.mode == MODE_RETRY:
            await self._write(name, output)  # a crash now leaves fixed rows listed: retried
            await self._write_errors(name, errors)  # again, they replace themselves by row id
        else:
            await self._write_errors(name, errors)
            await self._write(name, output)
        if work.task.mode != MODE_RETRY:
            self._add(objects_done=1)
        self._emit(force=True)

    async def _write_errors(self, name: str, errors: list[dict[str, Any]]) -> None:
        if errors:
            await self._write(errors_name(name),
                              b"".join(orjson.dumps(e, default=str) + b"\n" for e in errors))
        else:
            await self._storage(self.target.delete(errors_name(name)), "delete",
                                errors_name(name))

    async def _write(self, name: str, data: bytes) -> None:
        await self._storage(self.target.write(name, data), "write", name)

    async def _storage(self, call: Awaitable[Any], verb: str, name: str) -> Any:
        """A bucket call that must succeed (the place already retried what may pass)."""
        try:
            return await call
        except ObjectNotFound:
            raise
        except StorageError as exc:
            raise JobAbort(f"cannot {verb} {name}: {exc}") from exc


def output_columns(predictions: list[tuple[list[int], Predicted]],
                   width: int) -> list[list[Any]]:
    """The output's columns (``row``, ``request_id``, the model's) in input order."""
    data: list[list[Any]] = [[] for _ in range(width)]
    for positions, p in sorted(predictions, key=lambda chunk: chunk[0][chunk[1].start]):
        count = len(p.columns[0])
        data[0] += positions[p.start:p.start + count]
        data[1] += [p.request_id] * count
        for column, values in zip(data[2:], p.columns, strict=True):
            column += values
    return data


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[start:stop] for start, stop in batches(len(items), size)]
