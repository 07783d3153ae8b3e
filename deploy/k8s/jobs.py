"""Inference jobs on the Kubernetes runtime: each run an Indexed Job of runner pods.

The same contract as the local supervisor (:mod:`deploy.local.jobs`), over the cluster:
a job in ``Scheduling``/``Running`` that this process does not follow yet gets its run
followed — its deployment made ready, its token signed, its Secret and Job applied
(server-side apply; a restart of mlgate re-adopts the Job of the current run instead of
applying it again) — and the Job watched (polled every ``POLL`` seconds) until its
``Complete`` or ``Failed`` condition. Objects done are counted from the output bucket
while it runs; at its end the whole job's counts are read back from the output
(:func:`deploy.batch.tally.tally`), since pods cannot report to this process, and the
job ends ``Succeeded``/``SucceededWithErrors``/``Failed`` as on one machine.

Deleting a job deletes its Jobs and Secrets (pods go with them). Jobs of jobs this
store never knew are left alone, as the deployment runtime leaves unknown deployments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from deploy.batch.locations import Endpoints, open_place
from deploy.batch.metrics import JobMetrics
from deploy.batch.scheduling import (
    RunFailed,
    delete_own_deployment,
    deployment_ready,
    runner_token,
)
from deploy.batch.tally import tally
from deploy.config import Settings
from deploy.control.job_plan import Counts, final_state, parse_location, relative_names
from deploy.control.jobs import (
    ACTIVE_STATES,
    STATE_FAILED,
    STATE_RUNNING,
    InferenceJob,
)
from deploy.control.resource import utcnow
from deploy.control.store import Store
from deploy.k8s.client import KubeClient, KubeError
from deploy.k8s.job_manifests import (
    JOB,
    LABEL_JOB,
    SECRET,
    job_object_name,
    job_state,
    render_job,
)

log = logging.getLogger("mlgate.jobs")
POLL = 5.0
DEFAULT_GATEWAY_URL = "http://mlgate.mlgate.svc"


def runner_env(settings: Settings) -> dict[str, str]:
    """What the pods need of this configuration: where the buckets are, the call limits."""
    e = Endpoints.from_settings(settings)
    env = {"MLGATE_BATCH_TIMEOUT": str(settings.batch.timeout),
           "MLGATE_BATCH_CALL_TIMEOUT": str(settings.batch.call_timeout),
           "MLGATE_BATCH_PROGRESS_INTERVAL": str(settings.batch.progress_interval)}
    for name, value in (("MLGATE_BATCH_S3_ENDPOINT_URL", e.s3),
                        ("MLGATE_BATCH_S3_REGION", e.s3_region),
                        ("MLGATE_BATCH_GCS_ENDPOINT_URL", e.gcs)):
        if value:
            env[name] = value
    return env


class KubernetesJobs:
    def __init__(self, store: Store, settings: Settings, metrics: JobMetrics | None = None,
                 client: KubeClient | None = None, poll: float = POLL) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics or JobMetrics()
        self.client = client or KubeClient(settings.kubernetes)
        self.gateway_url = settings.batch.gateway_url or DEFAULT_GATEWAY_URL
        self.poll = poll
        self._runs: dict[str, tuple[int, asyncio.Task[None]]] = {}
        self._known: set[str] = set()
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.start()
        self.store.subscribe(self._wake.set)
        self._loop = asyncio.create_task(self._follow(), name="mlgate-kubernetes-jobs")

    async def close(self) -> None:
        """Stop following; the Jobs keep running in the cluster and are re-adopted later."""
        tasks = [t for _, t in self._runs.values()]
        if self._loop is not None:
            tasks.append(self._loop)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.close()

    async def _follow(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.sync()
            except Exception:  # a bug must not stop the loop that follows every job
                log.exception("following inference jobs failed; retrying")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll):
                    await self._wake.wait()

    async def sync(self) -> None:
        jobs = {job.id: job for job in self.store.list_jobs()}
        self.metrics.set_statuses({job_id: job.status for job_id, job in jobs.items()})
        for job_id, (generation, task) in list(self._runs.items()):
            job = jobs.get(job_id)
            if job is None or job.generation != generation:
                task.cancel()
                del self._runs[job_id]
        for job in jobs.values():
            if job.status.state in ACTIVE_STATES and job.id not in self._runs:
                task = asyncio.create_task(self._run(job), name=f"mlgate-job-{job.id}")
                self._runs[job.id] = (job.generation, task)
        for job_id in self._known - set(jobs):
            await self._delete_objects(job_id)
        self._known = set(jobs)

    async def _delete_objects(self, job_id: str, keep: str | None = None) -> None:
        """Every Job and Secret of the job (but ``keep``, the current run's)."""
        for kind in (JOB, SECRET):
            with contextlib.suppress(KubeError):
                found, _ = await self.client.list(kind, {LABEL_JOB: job_id})
                for obj in found:
                    if obj["metadata"]["name"] != keep:
                        await self.client.delete(kind, obj["metadata"]["name"])
                        log.info("inference job %s: deleted %s/%s", job_id, kind[1],
                                 obj["metadata"]["name"])

    # -- one run -------------------------------------------------------------------------------

    async def _run(self, job: InferenceJob) -> None:
        status = job.status
        try:
            status.deployment = job.deployment_id
            await deployment_ready(self.store, job, self.settings.local.replica_start_timeout,
                                   lambda reason: self._waiting(job, reason))
            name = job_object_name(job)
            if await self._current(job) is None:
                token = runner_token(self.settings, job)
                for obj in render_job(job, self.settings.kubernetes, self.settings.batch,
                                      self.gateway_url, token, runner_env(self.settings)):
                    await self.client.apply(obj)
                await self._delete_objects(job.id, keep=name)  # an earlier run's
                status.runs += 1
                status.start_time, status.completion_time = utcnow(), ""
                log.info("inference job %s: run %d as Job/%s, %d pod(s)", job.id, status.runs,
                         name, job.spec.parallelism)
            status.state, status.reason = STATE_RUNNING, ""
            self._write(job)
            await self._until_done(job)
        except RunFailed as exc:
            self._finish(job, STATE_FAILED, str(exc))
        except KubeError as exc:
            self._finish(job, STATE_FAILED, f"the cluster refused the job's objects: {exc}")
        finally:
            if job.status.state not in ACTIVE_STATES:
                delete_own_deployment(self.store, job)
                entry = self._runs.get(job.id)
                if entry is not None and entry[0] == job.generation:
                    del self._runs[job.id]

    async def _current(self, job: InferenceJob) -> dict | None:
        found, _ = await self.client.list(JOB, {LABEL_JOB: job.id})
        name = job_object_name(job)
        return next((o for o in found if o["metadata"]["name"] == name), None)

    async def _until_done(self, job: InferenceJob) -> None:
        source = parse_location(job.spec.input)
        target = parse_location(job.spec.output).as_folder()
        endpoints = Endpoints.from_settings(self.settings)
        inputs, outputs = open_place(source, endpoints), open_place(target, endpoints)
        try:
            names = set(relative_names(await inputs.names(source.name_prefix),
                                       source.name_prefix))
            job.status.objects_total = len(names)
            while True:
                try:
                    obj = await self._current(job)
                except KubeError as exc:
                    log.warning("inference job %s: %s; asking again", job.id, exc)
                    await asyncio.sleep(self.poll)
                    continue
                if obj is None:
                    raise RunFailed(f"its Job {job_object_name(job)} was deleted")
                state, reason = job_state(obj)
                if state != "running":
                    counts = await tally(inputs, outputs, job.spec.format, source.name_prefix)
                    if state == "failed":
                        self._finish(job, STATE_FAILED, reason, counts)
                    else:
                        self._finish(job, *final_state(counts, job.spec.max_error_rate),
                                     counts)
                    return
                job.status.objects_done = len(names & set(await outputs.names()))
                self._write(job)
                await asyncio.sleep(self.poll)
        finally:
            await inputs.close()
            await outputs.close()

    def _waiting(self, job: InferenceJob, reason: str) -> None:
        job.status.reason = reason
        self._write(job)

    def _finish(self, job: InferenceJob, state: str, reason: str,
                counts: Counts | None = None) -> None:
        status = job.status
        if counts is not None:
            status.take_counts(counts)
        status.state, status.reason, status.completion_time = state, reason, utcnow()
        self._write(job)
        log.info("inference job %s: %s%s", job.id, state, f": {reason}" if reason else "")

    def _write(self, job: InferenceJob) -> None:
        if self.store.set_job_status(job.id, job.generation, job.status):
            self.metrics.set_status(job.id, job.status)
