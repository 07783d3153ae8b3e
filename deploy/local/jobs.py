"""Inference jobs on one machine: runner processes started, followed and restarted by mlgate.

The supervisor follows the store, like the reconciler: a job in ``Scheduling`` or
``Running`` that no run of this process holds is started — a new or resumed job, and
after a restart every job the last mlgate was running (its runners died with it; they
skip what they committed). A run:

1. makes sure the deployment is there: a ``modelUri`` job creates its own (``<id>-job``,
   ``replicas`` replicas) and waits until it is Ready; it is deleted when the run ends;
2. signs a token with the submitter's roles (or uses ``batch.token_file``) for the calls;
3. starts ``parallelism`` runner processes (``python -m deploy.batch``, one per shard),
   reads their progress lines into the job's status (written every
   ``batch.progress_interval``) and the Prometheus metrics;
4. restarts a runner that dies (killed, out of memory) up to ``batch.restart_limit``
   times with backoff, each time resuming from what it committed;
5. ends the job: ``Failed`` when a runner says the job must stop (the gateway refuses or
   cannot be reached, the error rate is over ``maxErrorRate``) or kept dying, otherwise
   ``Succeeded`` or ``SucceededWithErrors`` from the totals.

Deleting a job stops its runners (SIGTERM; what they committed stays). Stopping mlgate
stops them too and leaves the job ``Running`` in the store, to be resumed at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from deploy.batch.events import OUTCOME_FAILED, End, Report, decode
from deploy.batch.metrics import JobMetrics
from deploy.batch.scheduling import (
    RunFailed,
    delete_own_deployment,
    deployment_ready,
    runner_token,
)
from deploy.config import Settings
from deploy.control.job_plan import Counts, final_state
from deploy.control.jobs import (
    ACTIVE_STATES,
    STATE_FAILED,
    STATE_RUNNING,
    InferenceJob,
)
from deploy.control.resource import utcnow
from deploy.control.store import Store
from deploy.local.process import die_with_parent

log = logging.getLogger("mlgate.jobs")
RESTART_BACKOFF = 1.0
STOP_TIMEOUT = 10.0


@dataclass(eq=False)
class _Shard:
    index: int
    report: Report | None = None
    end: End | None = None
    process: asyncio.subprocess.Process | None = None
    predicted: int = 0
    refused: int = 0


@dataclass(eq=False)
class _Run:
    job: InferenceJob
    task: asyncio.Task[None] | None = None
    shards: list[_Shard] = field(default_factory=list)
    written_at: float = 0.0
    started: float = 0.0
    """When its runners started (monotonic)."""


class JobSupervisor:
    def __init__(self, store: Store, settings: Settings, gateway_url: str,
                 metrics: JobMetrics | None = None, config_file: str | None = None) -> None:
        self.store = store
        self.settings = settings
        self.gateway_url = settings.batch.gateway_url or gateway_url
        self.metrics = metrics or JobMetrics()
        self.config_file = config_file
        self.log_dir = settings.data_path / "logs"
        self._runs: dict[str, _Run] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.store.subscribe(self._wake.set)
        self._wake.set()
        self._loop = asyncio.create_task(self._follow(), name="mlgate-jobs")

    async def close(self) -> None:
        """Stop every runner; the jobs stay as they are in the store for the next start."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        for run in list(self._runs.values()):
            await self._cancel(run)

    # -- following the store ---------------------------------------------------------------------

    async def _follow(self) -> None:
        while True:
            self._wake.clear()
            try:
                self.sync()
            except Exception:  # a bug must not stop the loop that runs every job
                log.exception("following inference jobs failed; retrying")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await self._wake.wait()

    def sync(self) -> None:
        jobs = {job.id: job for job in self.store.list_jobs()}
        self.metrics.set_statuses({job_id: job.status for job_id, job in jobs.items()})
        for job_id, run in list(self._runs.items()):
            job = jobs.get(job_id)
            if job is None or job.generation != run.job.generation:
                log.info("inference job %s: %s; stopping its runners", job_id,
                         "deleted" if job is None else "started again")
                del self._runs[job_id]
                if run.task is not None:
                    run.task.cancel()  # its runners are stopped as it unwinds
        for job in jobs.values():
            if job.status.state in ACTIVE_STATES and job.id not in self._runs:
                run = _Run(job)
                self._runs[job.id] = run
                run.task = asyncio.create_task(self._run(run), name=f"mlgate-job-{job.id}")

    async def _cancel(self, run: _Run) -> None:
        if run.task is not None and not run.task.done():
            run.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run.task

    # -- one run -----------------------------------------------------------------------------------

    async def _run(self, run: _Run) -> None:
        job = run.job
        status = job.status
        try:
            status.deployment = job.deployment_id
            await deployment_ready(self.store, job,
                                   self.settings.local.replica_start_timeout + 60,
                                   lambda reason: self._waiting(run, reason))
            env = self._token_env(job)
            status.state, status.reason = STATE_RUNNING, ""
            status.runs += 1
            status.start_time, status.completion_time = utcnow(), ""
            self._write(run, force=True)
            log.info("inference job %s: run %d, %d runner(s), %s -> %s", job.id, status.runs,
                     job.spec.parallelism, job.spec.input, job.spec.output)
            run.shards = [_Shard(i) for i in range(job.spec.parallelism)]
            run.started = time.monotonic()
            ends = await self._run_shards(run, env)
            failed = [e for e in ends if e.outcome == OUTCOME_FAILED]
            counts = self._counts(run)
            if failed:
                state, reason = STATE_FAILED, failed[0].reason
            else:
                state, reason = final_state(counts, job.spec.max_error_rate)
            self._finish(run, state, reason)
        except RunFailed as exc:
            self._finish(run, STATE_FAILED, str(exc))
        except asyncio.CancelledError:
            await self._stop_shards(run)
            raise
        except Exception as exc:
            log.exception("inference job %s failed", job.id)
            await self._stop_shards(run)
            self._finish(run, STATE_FAILED, f"mlgate could not run the job: {exc!r}")
        finally:
            if self._runs.get(job.id) is run:
                del self._runs[job.id]
                self._wake.set()
            if job.status.state not in ACTIVE_STATES or not self._job_exists(job.id):
                delete_own_deployment(self.store, job)

    def _waiting(self, run: _Run, reason: str) -> None:
        run.job.status.reason = reason
        self._write(run, force=True)

    def _finish(self, run: _Run, state: str, reason: str) -> None:
        status = run.job.status
        status.state, status.reason = state, reason
        status.completion_time = utcnow()
        seconds = time.monotonic() - run.started if run.started else 0.0
        processed = sum(s.report.predicted + s.report.refused for s in run.shards
                        if s.report is not None)
        status.rows_per_second = processed / seconds if seconds > 0 else 0.0  # the run's mean
        self._write(run, force=True, final=True)
        log.info("inference job %s: %s%s (%d rows done, %d failed, %d of %d objects)",
                 run.job.id, state, f": {reason}" if reason else "", status.rows_done,
                 status.rows_failed, status.objects_done, status.objects_total)

    def _job_exists(self, job_id: str) -> bool:
        return self.store.job_generation(job_id) is not None

    def _token_env(self, job: InferenceJob) -> dict[str, str]:
        """How the runners authenticate to the gateway (never on their command line)."""
        if self.settings.auth.enabled and self.settings.batch.token_file:
            return {"MLGATE_TOKEN_FILE": self.settings.batch.token_file}
        token = runner_token(self.settings, job)
        return {"MLGATE_TOKEN": token} if token else {}

    # -- runner processes -------------------------------------------------------------------------

    async def _run_shards(self, run: _Run, env: dict[str, str]) -> list[End]:
        tasks = [asyncio.create_task(self._shard(run, shard, env)) for shard in run.shards]
        try:
            for finished in asyncio.as_completed(tasks):
                end = await finished
                if end.outcome == OUTCOME_FAILED:  # the job must stop: so must the others
                    for task in tasks:
                        task.cancel()
                    break
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for task in tasks:
                task.cancel()
        return [r for r in results if isinstance(r, End)]

    async def _shard(self, run: _Run, shard: _Shard, env: dict[str, str]) -> End:
        failures = 0
        while True:
            shard.end = None
            code = await self._run_process(run, shard, env)
            if shard.end is not None:
                return shard.end
            failures += 1
            reason = (f"runner {shard.index} exited with {_describe(code)}: "
                      f"{self._last_log_line(run.job.id, shard.index)}")
            if failures > self.settings.batch.restart_limit:
                return End(OUTCOME_FAILED, f"{reason} ({failures} times)")
            delay = RESTART_BACKOFF * 2 ** (failures - 1)
            log.warning("inference job %s: %s; starting it again in %.0fs", run.job.id, reason,
                        delay)
            await asyncio.sleep(delay)

    async def _run_process(self, run: _Run, shard: _Shard, env: dict[str, str]) -> int:
        job = run.job
        document = orjson.dumps({"id": job.id, "spec": job.spec.to_dict()}).decode()
        cmd = [sys.executable, "-m", "deploy.batch", "--job", document, "--shard",
               str(shard.index), "--gateway", self.gateway_url]
        if job.retry_errors:
            cmd.append("--retry-errors")
        if self.config_file:
            cmd += ["--config", self.config_file]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self._log_path(job.id, shard.index), "ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=log_file, start_new_session=True, preexec_fn=die_with_parent,
                env={**os.environ, **env}, limit=1 << 20)
        shard.process = process
        shard.predicted = shard.refused = 0
        log.info("inference job %s: runner %d started (pid %d)", job.id, shard.index,
                 process.pid)
        try:
            assert process.stdout is not None
            async for line in process.stdout:
                self._take(run, shard, line)
            return await process.wait()
        except asyncio.CancelledError:
            await _terminate(process)
            raise

    def _take(self, run: _Run, shard: _Shard, line: bytes) -> None:
        event = decode(line)
        if isinstance(event, End):
            shard.end = event
        elif isinstance(event, Report):
            self.metrics.count(run.job.id, event.predicted - shard.predicted,
                               event.refused - shard.refused)
            shard.predicted, shard.refused = event.predicted, event.refused
            shard.report = event
            self._write(run)

    async def _stop_shards(self, run: _Run) -> None:
        for shard in run.shards:
            if shard.process is not None:
                await _terminate(shard.process)

    def _counts(self, run: _Run) -> Counts:
        total = Counts()
        for shard in run.shards:
            if shard.report is not None:
                total += shard.report.counts
        return total

    def _write(self, run: _Run, force: bool = False, final: bool = False) -> None:
        """The run's status into the store (at most every ``progress_interval``)."""
        now = time.monotonic()
        if not force and now - run.written_at < self.settings.batch.progress_interval:
            return
        run.written_at = now
        status = run.job.status
        if run.shards:
            rate = status.rows_per_second if final else sum(
                s.report.rows_per_second for s in run.shards
                if s.report is not None and s.end is None)
            status.take_counts(self._counts(run))
            status.rows_per_second = rate
        if not self.store.set_job_status(run.job.id, run.job.generation, status):
            return  # deleted or resumed meanwhile: sync() stops this run
        self.metrics.set_status(run.job.id, status)

    def _log_path(self, job_id: str, index: int) -> Path:
        return self.log_dir / f"job-{job_id}-{index}.log"

    def _last_log_line(self, job_id: str, index: int) -> str:
        try:
            lines = [ln.strip() for ln in self._log_path(job_id, index).read_text(
                errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "no log"
        return lines[-1] if lines else "no log"


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"code {code}"


async def _terminate(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()

