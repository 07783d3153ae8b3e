"""InferenceJob: a model over every object under a bucket prefix — shape, defaults, validation.

ODAHU's v1 shape where it has one (``POST /api/v1/batch/job``): ``{"kind": "InferenceJob",
"id": ..., "spec": {...}}``. Pure functions: whether a named deployment exists is asked
through a callable, and locations are checked as strings (:mod:`deploy.control.job_plan`
says what they mean); listing the input happens in the API's shell.

Spec fields (camelCase, as the issue and ODAHU write them):

- ``deployment``: the ModelDeployment whose default route every call goes through, or
  ``modelUri`` (+ ``predictor``, ``replicas``): a model the job runs in a deployment of
  its own, created when it starts and deleted when it ends;
- ``input``: a local path, ``s3://bucket/prefix`` or ``gs://bucket/prefix``: every object
  under it (names with a segment starting with ``_`` or ``.`` are skipped, as Spark does);
- ``output``: where one object per input object goes, under the same relative name, and
  ``_errors/<object>.jsonl`` for what could not be predicted;
- ``format``: ``jsonl`` | ``csv`` | ``parquet`` | ``odahu-json`` (input and output);
- ``dropColumns``: input columns not sent to the model (a label, an id), e.g. ``[quality]``;
- ``batchSize`` rows per model call, ``concurrency`` calls in flight per runner,
  ``retries`` per call for retryable failures (exponential backoff);
- ``parallelism``: runner processes (Kubernetes: the Indexed Job's completions), each
  taking the objects whose name hashes to its index;
- ``maxErrorRate``: the job is Failed once more than this share of its rows failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deploy.control.job_plan import Counts, location_errors, overlap_error
from deploy.control.resource import ValidationError, parse_header

JOB_VALIDATION = "Validation of inference job is failed"
JOB_PREDICTORS = ("odahu-ml-server",)
"""Predictors serving ``/api/model/invoke`` (ODAHU's body), which the runners call."""
FORMATS = ("jsonl", "csv", "parquet", "odahu-json")
SPEC_FIELDS = ("deployment", "modelUri", "predictor", "replicas", "input", "output", "format",
               "dropColumns", "batchSize", "concurrency", "retries", "parallelism",
               "maxErrorRate")

DEFAULT_FORMAT = "jsonl"
DEFAULT_BATCH_SIZE = 256
DEFAULT_CONCURRENCY = 4
DEFAULT_RETRIES = 3
DEFAULT_PARALLELISM = 1
DEFAULT_MAX_ERROR_RATE = 0.1
MAX_BATCH_SIZE = 100_000
MAX_CONCURRENCY = 256
MAX_RETRIES = 20
MAX_PARALLELISM = 64
MAX_REPLICAS = 16

STATE_SCHEDULING = "Scheduling"
STATE_RUNNING = "Running"
STATE_SUCCEEDED = "Succeeded"
STATE_SUCCEEDED_WITH_ERRORS = "SucceededWithErrors"
STATE_FAILED = "Failed"
TERMINAL_STATES = frozenset({STATE_SUCCEEDED, STATE_SUCCEEDED_WITH_ERRORS, STATE_FAILED})
ACTIVE_STATES = frozenset({STATE_SCHEDULING, STATE_RUNNING})

OWN_DEPLOYMENT_SUFFIX = "-job"


@dataclass
class InferenceJobSpec:
    input: str
    output: str
    deployment: str | None = None
    model_uri: str | None = None
    predictor: str = "odahu-ml-server"
    replicas: int = 1
    format: str = DEFAULT_FORMAT
    batch_size: int = DEFAULT_BATCH_SIZE
    concurrency: int = DEFAULT_CONCURRENCY
    retries: int = DEFAULT_RETRIES
    parallelism: int = DEFAULT_PARALLELISM
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE
    drop_columns: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.deployment:
            out["deployment"] = self.deployment
        else:
            out.update(modelUri=self.model_uri, predictor=self.predictor, replicas=self.replicas)
        out.update(input=self.input, output=self.output, format=self.format)
        if self.drop_columns:
            out["dropColumns"] = list(self.drop_columns)
        out.update(batchSize=self.batch_size, concurrency=self.concurrency, retries=self.retries,
                   parallelism=self.parallelism, maxErrorRate=self.max_error_rate)
        return out


@dataclass
class InferenceJobStatus:
    """Counts are over the whole job (every runner, every run): ``rowsDone`` rows written to
    outputs, ``rowsFailed`` rows listed in ``_errors/``, ``objectsFailed`` objects that could
    not be read at all."""

    state: str = STATE_SCHEDULING
    reason: str = ""
    objects_total: int = 0
    objects_done: int = 0
    objects_failed: int = 0
    rows_total: int = 0
    rows_done: int = 0
    rows_failed: int = 0
    rows_per_second: float = 0.0
    deployment: str = ""
    runs: int = 0
    start_time: str = ""
    completion_time: str = ""
    last_updated_time: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "state": self.state, "objectsTotal": self.objects_total,
            "objectsDone": self.objects_done, "objectsFailed": self.objects_failed,
            "rowsTotal": self.rows_total, "rowsDone": self.rows_done,
            "rowsFailed": self.rows_failed, "rowsPerSecond": round(self.rows_per_second, 1),
            "deployment": self.deployment, "runs": self.runs, "startTime": self.start_time,
            "completionTime": self.completion_time, "lastUpdatedTime": self.last_updated_time,
        }
        if self.reason:
            out["reason"] = self.reason
        return out

    def take_counts(self, counts: Counts) -> None:
        """The objects and rows counts of ``counts`` (the runners' sum, or a tally)."""
        self.objects_total, self.objects_done = counts.objects_total, counts.objects_done
        self.objects_failed, self.rows_total = counts.objects_failed, counts.rows_total
        self.rows_done, self.rows_failed = counts.rows_done, counts.rows_failed

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InferenceJobStatus:
        return cls(state=data.get("state") or STATE_SCHEDULING, reason=data.get("reason") or "",
                   objects_total=int(data.get("objectsTotal") or 0),
                   objects_done=int(data.get("objectsDone") or 0),
                   objects_failed=int(data.get("objectsFailed") or 0),
                   rows_total=int(data.get("rowsTotal") or 0),
                   rows_done=int(data.get("rowsDone") or 0),
                   rows_failed=int(data.get("rowsFailed") or 0),
                   rows_per_second=float(data.get("rowsPerSecond") or 0.0),
                   deployment=data.get("deployment") or "", runs=int(data.get("runs") or 0),
                   start_time=data.get("startTime") or "",
                   completion_time=data.get("completionTime") or "",
                   last_updated_time=data.get("lastUpdatedTime") or "")


@dataclass(frozen=True)
class Submitter:
    """Who created (or last resumed) the job: the runner's calls carry these roles."""

    subject: str = ""
    roles: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "roles": list(self.roles)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Submitter:
        data = data or {}
        return cls(str(data.get("subject") or ""), tuple(data.get("roles") or ()))


@dataclass
class InferenceJob:
    id: str
    spec: InferenceJobSpec
    status: InferenceJobStatus = field(default_factory=InferenceJobStatus)
    created_at: str = ""
    updated_at: str = ""
    submitter: Submitter = field(default_factory=Submitter)
    retry_errors: bool = False
    """The current run re-runs only the rows listed in ``_errors/`` (``resume --retry-errors``)."""
    generation: int = 0
    """Names the current run (the store sets it; one more at each resume)."""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "spec": self.spec.to_dict(), "status": self.status.to_dict(),
                "createdAt": self.created_at, "updatedAt": self.updated_at}

    @property
    def deployment_id(self) -> str:
        """The deployment every call goes to: the named one, or the job's own."""
        return self.spec.deployment or own_deployment_id(self.id)


def own_deployment_id(job_id: str) -> str:
    """The deployment a ``modelUri`` job runs its model in (a valid id for any job id)."""
    return job_id[:63 - len(OWN_DEPLOYMENT_SUFFIX)] + OWN_DEPLOYMENT_SUFFIX


def parse_job(data: Any, deployment_predictor: Callable[[str], str | None]) -> InferenceJob:
    """Validate and default an InferenceJob mapping; ``ValidationError`` lists every problem.

    ``deployment_predictor(id)``: the predictor of that deployment, None when there is none.
    """
    header = parse_header(data, "InferenceJob", "inference job", "input, output and deployment")
    errors = header.errors
    raw = header.spec
    if raw is None:
        raise ValidationError(JOB_VALIDATION, errors)
    unknown = sorted(set(raw) - set(SPEC_FIELDS))
    if unknown:
        errors.append(f"unknown spec field(s): {', '.join(map(str, unknown))}")
    deployment, model_uri = raw.get("deployment"), raw.get("modelUri")
    if deployment and model_uri:
        errors.append("give either deployment or modelUri, not both")
    elif deployment:
        if not isinstance(deployment, str):
            errors.append(f"deployment must be a model deployment id, got {deployment!r}")
        else:
            found = deployment_predictor(deployment)
            if found is None:
                errors.append(f'deployment: entity "{deployment}" is not found')
            elif found not in JOB_PREDICTORS:
                errors.append(f"deployment {deployment} uses the {found} predictor; jobs call "
                              f"/api/model/invoke, which {', '.join(JOB_PREDICTORS)} serves")
        for name in ("predictor", "replicas"):
            if raw.get(name) is not None:
                errors.append(f"{name} goes with modelUri, not with deployment")
    elif model_uri:
        if not isinstance(model_uri, str):
            errors.append(f"modelUri must be a string, got {model_uri!r}")
    else:
        errors.append("name the model: deployment (an existing model deployment) or modelUri")
    predictor = raw.get("predictor") or "odahu-ml-server"
    if predictor not in JOB_PREDICTORS:
        errors.append(f"predictor {predictor!r} is not supported for jobs; use "
                      f"{', '.join(JOB_PREDICTORS)} (jobs call /api/model/invoke)")
    fmt = raw.get("format", DEFAULT_FORMAT)
    if fmt not in FORMATS:
        errors.append(f"format {fmt!r} is not supported; use one of {', '.join(FORMATS)}")
    for name in ("input", "output"):
        errors += location_errors(name, raw.get(name))
    if not any(e.startswith(("input", "output")) for e in errors):
        overlap = overlap_error(raw["input"], raw["output"])
        if overlap:
            errors.append(overlap)
    numbers = {name: _int(raw, name, default, low, high, errors) for name, default, low, high in (
        ("batchSize", DEFAULT_BATCH_SIZE, 1, MAX_BATCH_SIZE),
        ("concurrency", DEFAULT_CONCURRENCY, 1, MAX_CONCURRENCY),
        ("retries", DEFAULT_RETRIES, 0, MAX_RETRIES),
        ("parallelism", DEFAULT_PARALLELISM, 1, MAX_PARALLELISM),
        ("replicas", 1, 1, MAX_REPLICAS))}
    drop = raw.get("dropColumns") or []
    if not isinstance(drop, list) or not all(isinstance(c, str) and c for c in drop):
        errors.append(f"dropColumns must be a list of column names, got {drop!r}")
        drop = []
    rate = raw.get("maxErrorRate", DEFAULT_MAX_ERROR_RATE)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        errors.append(f"maxErrorRate must be a number from 0 to 1, got {rate!r}")
    if errors:
        raise ValidationError(JOB_VALIDATION, errors)
    assert header.id is not None
    spec = InferenceJobSpec(
        input=raw["input"], output=raw["output"], deployment=deployment or None,
        model_uri=None if deployment else model_uri, predictor=predictor,
        replicas=numbers["replicas"], format=fmt, batch_size=numbers["batchSize"],
        concurrency=numbers["concurrency"], retries=numbers["retries"],
        parallelism=numbers["parallelism"], max_error_rate=float(rate),
        drop_columns=tuple(dict.fromkeys(drop)))
    return InferenceJob(id=header.id, spec=spec)


def _int(raw: dict[str, Any], name: str, default: int, low: int, high: int,
         errors: list[str]) -> int:
    value = raw.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors.append(f"{name} must be an integer from {low} to {high}, got {value!r}")
        return default
    return value


def job_from_stored(job_id: str, spec: dict[str, Any], status: dict[str, Any],
                    created_at: str, updated_at: str, submitter: dict[str, Any] | None,
                    retry_errors: bool) -> InferenceJob:
    """Rebuild a stored job (validated when it was written; its deployment may be gone since)."""
    job = parse_job({"id": job_id, "spec": spec}, lambda _name: JOB_PREDICTORS[0])
    job.status = InferenceJobStatus.from_dict(status)
    job.created_at, job.updated_at = created_at, updated_at
    job.submitter = Submitter.from_dict(submitter)
    job.retry_errors = retry_errors
    return job
