"""What every job runtime does around its runners (local processes, or a Kubernetes Job).

- :func:`deployment_ready`: the deployment the calls go to exists — a ``modelUri`` job
  creates its own (``<id>-job``, ``replicas`` replicas, annotated with the job) and waits
  until it is Ready; :func:`delete_own_deployment` removes it when the job ends;
- :func:`runner_token`: the bearer token the runners send (signed now with the
  submitter's roles, or read from ``batch.token_file``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from deploy.batch.metrics import JobMetrics
from deploy.config import ConfigError, Settings
from deploy.control.deployments import STATE_FAILED, STATE_READY, parse_deployment
from deploy.control.jobs import InferenceJob
from deploy.control.store import NotFound, Store
from deploy.keys import mint_token

log = logging.getLogger("mlgate.jobs")
JOB_ANNOTATION = "batch.mlgate.io/job"
POLL = 0.5


class JobRuntime(Protocol):
    """What runs inference jobs: follows the store from ``start`` to ``close``."""

    metrics: JobMetrics

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class RunFailed(Exception):
    """The run cannot go on; the message is the job's reason."""


async def deployment_ready(store: Store, job: InferenceJob, timeout: float,
                           waiting: Callable[[str], None] = lambda _reason: None) -> None:
    """Return once the job's deployment can take its calls; :class:`RunFailed` otherwise.

    A named deployment only has to exist (one at zero replicas holds the first call while
    a replica starts); the job's own deployment has to be Ready.
    """
    dep_id = job.deployment_id
    if not job.spec.model_uri:
        if not store.has_deployment(dep_id):
            raise RunFailed(f'deployment: entity "{dep_id}" is not found')
        return
    dep = parse_deployment({"id": dep_id, "spec": {
        "image": job.spec.model_uri, "predictor": job.spec.predictor,
        "minReplicas": job.spec.replicas, "maxReplicas": job.spec.replicas,
        "annotations": {JOB_ANNOTATION: job.id}}})
    with contextlib.suppress(NotFound):
        current = store.get_deployment(dep_id)
        if current.spec.annotations.get(JOB_ANNOTATION) != job.id:
            raise RunFailed(f"deployment {dep_id} exists and does not belong to this job")
    _, what = store.apply_deployment(dep)
    log.info("inference job %s: its deployment %s %s", job.id, dep_id, what)
    waiting(f"waiting for deployment {dep_id} to be Ready")
    deadline = time.monotonic() + timeout
    while True:
        try:
            dep = store.get_deployment(dep_id)
        except NotFound:
            raise RunFailed(f"deployment {dep_id} was deleted") from None
        if dep.status.state == STATE_READY:
            return
        if dep.status.state == STATE_FAILED:
            raise RunFailed(f"deployment {dep_id} failed: {dep.status.reason}")
        if time.monotonic() > deadline:
            raise RunFailed(f"deployment {dep_id} is not Ready after {timeout:g}s"
                            + (f": {dep.status.reason}" if dep.status.reason else ""))
        await asyncio.sleep(POLL)


def delete_own_deployment(store: Store, job: InferenceJob) -> None:
    """Remove the deployment a ``modelUri`` job created (never one it did not create)."""
    if not job.spec.model_uri:
        return
    dep_id = job.deployment_id
    with contextlib.suppress(NotFound):
        dep = store.get_deployment(dep_id)
        if dep.spec.annotations.get(JOB_ANNOTATION) == job.id:
            store.mark_deleting(dep_id)
            log.info("inference job %s: deleting its deployment %s", job.id, dep_id)


def runner_token(settings: Settings, job: InferenceJob) -> str | None:
    """The token for the job's calls; None when authentication is off."""
    auth = settings.auth
    if not auth.enabled:
        return None
    if settings.batch.token_file:
        try:
            return Path(settings.batch.token_file).read_text().strip()
        except OSError as exc:
            raise RunFailed(f"batch.token_file: {exc}") from exc
    try:
        return mint_token(auth, settings.data_path, roles=job.submitter.roles,
                          subject=job.submitter.subject or f"job:{job.id}",
                          ttl=settings.batch.token_ttl)
    except ConfigError as exc:
        raise RunFailed(f"no token for the job's calls: {exc}; set batch.token_file to a "
                        "file holding one") from exc
