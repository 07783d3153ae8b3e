"""``/api/v1/batch/job``: create, list, get, delete and resume inference jobs.

A job is refused with 400 before anything runs when its spec is invalid (every problem
named), when its input prefix holds no object, when its output lies inside its input or
already holds objects, or when its deployment does not exist. Relative local paths (and a
relative ``modelUri``) resolve from mlgate's working directory, as deployments' images
do; local paths must lie under ``batch.local_roots`` (a job must not read or write files
the operator did not offer) and are refused on the Kubernetes runtime, whose runners run
in pods.

The supervisor (:mod:`deploy.local.jobs`, or the Kubernetes runtime's) reacts to the
store: a new or resumed job is ``Scheduling`` until its runners start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from deploy.api.common import STORE, answer, read_object
from deploy.batch.locations import Endpoints, open_place, resolve_job_paths
from deploy.control.job_plan import parse_location, relative_names
from deploy.control.jobs import JOB_VALIDATION, InferenceJob, Submitter, parse_job
from deploy.control.resource import ValidationError
from deploy.control.store import AlreadyExists, NotFound, Store
from gateway import PRINCIPAL_KEY


@dataclass(frozen=True)
class BatchConfig:
    """What the handlers need beyond the store."""

    endpoints: Endpoints
    local_roots: tuple[Path, ...]
    """Local inputs and outputs must lie under one of these (resolved) directories."""
    cluster: bool = False
    """Runners run in pods (``runtime: kubernetes``): no local paths."""


BATCH = web.AppKey("mlgate_batch_config", BatchConfig)


def _store(request: web.Request) -> Store:
    return request.app[STORE]


def submitter(request: web.Request) -> Submitter:
    """The caller, whose roles the job's model calls will carry."""
    principal = request.get(PRINCIPAL_KEY)
    if principal is None:
        return Submitter()
    return Submitter(principal.subject or "", tuple(sorted(principal.roles)))


async def parse_request(request: web.Request, config: BatchConfig) -> InferenceJob:
    """The body as a validated job with its locations resolved, its input listed."""
    data = resolve_job_paths(await read_object(request), Path.cwd())
    store = _store(request)

    def predictor(dep_id: str) -> str | None:
        try:
            return store.get_deployment(dep_id).spec.predictor
        except NotFound:
            return None

    job = parse_job(data, predictor)
    if store.job_generation(job.id) is not None:
        raise AlreadyExists(job.id)  # before looking at any bucket
    errors = [e for name in ("input", "output")
              if (e := _local_error(name, getattr(job.spec, name), config))]
    if errors:
        raise ValidationError(JOB_VALIDATION, errors)
    await check_locations(job, config.endpoints)
    return job


def _local_error(name: str, text: str, config: BatchConfig) -> str | None:
    location = parse_location(text)
    if location.scheme != "file":
        return None
    if config.cluster:
        return (f"{name} {text} is a local path, but runners run in pods on the kubernetes "
                "runtime: use s3:// or gs://")
    path = Path(location.prefix)
    if not any(path == root or path.is_relative_to(root) for root in config.local_roots):
        roots = ", ".join(str(r) for r in config.local_roots)
        return f"{name} {text} is outside the local directories jobs may use ({roots}; " \
               "batch.local_roots)"
    return None


async def check_locations(job: InferenceJob, endpoints: Endpoints) -> None:
    """400 when the input prefix names no object (a typo would otherwise "succeed"), or when
    the output already holds objects: a new job would take them for its own finished work
    (to continue a job, resume it)."""
    source = parse_location(job.spec.input)
    target = parse_location(job.spec.output).as_folder()
    inputs, outputs = open_place(source, endpoints), open_place(target, endpoints)
    try:
        names = relative_names(await inputs.names(source.name_prefix), source.name_prefix)
        present = await outputs.names()
    finally:
        await inputs.close()
        await outputs.close()
    errors = []
    if not names:
        errors.append(f"the input {job.spec.input} holds no object (names starting with '_' "
                      "or '.' are skipped)")
    if present:
        errors.append(f"the output {target} already holds {len(present)} object(s), e.g. "
                      f"{present[0]}: write a new job's output to an empty prefix, or resume "
                      "the job that wrote them")
    if errors:
        raise ValidationError(JOB_VALIDATION, errors)


async def list_jobs(request: web.Request) -> web.Response:
    return answer(200, [j.to_dict() for j in _store(request).list_jobs()])


async def get_job(request: web.Request) -> web.Response:
    return answer(200, _store(request).get_job(request.match_info["id"]).to_dict())


async def create_job(request: web.Request) -> web.Response:
    job = await parse_request(request, request.app[BATCH])
    job.submitter = submitter(request)
    return answer(201, _store(request).create_job(job).to_dict())


async def delete_job(request: web.Request) -> web.Response:
    job_id = request.match_info["id"]
    _store(request).delete_job(job_id)
    return answer(200, {"message": f"Inference job {job_id} was deleted"})


async def resume_job(request: web.Request) -> web.Response:
    """Body (optional): ``{"retryErrors": true}`` re-runs only the rows in ``_errors/``."""
    retry = False
    if request.body_exists:
        data = await read_object(request)
        retry = data.get("retryErrors", False)
        if not isinstance(retry, bool):
            raise ValidationError("Resume of inference job is failed",
                                  [f"retryErrors must be true or false, got {retry!r}"])
    job = _store(request).resume_job(request.match_info["id"], retry, submitter(request))
    return answer(200, job.to_dict())


def add_routes(app: web.Application, prefix: str, config: BatchConfig) -> None:
    app[BATCH] = config
    base = f"{prefix}/batch/job"
    app.router.add_get(base, list_jobs)
    app.router.add_post(base, create_job)
    app.router.add_get(base + "/{id}", get_job)
    app.router.add_delete(base + "/{id}", delete_job)
    app.router.add_post(base + "/{id}/resume", resume_job)

