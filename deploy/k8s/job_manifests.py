"""The Kubernetes objects of one inference job run, as plain dicts — pure functions.

``render_job(job, ...)`` returns, in apply order:

- a ``Secret`` holding the bearer token the runners send to the gateway (when there is
  one), so it is never in the Job's spec or a pod's command line;
- an Indexed ``batch/v1`` ``Job``: ``parallelism`` completions run at once, pod ``i``
  (``$JOB_COMPLETION_INDEX``, set by Kubernetes) takes the input objects whose name
  hashes to ``i`` (:func:`deploy.control.job_plan.shard_of`), in the mlgate image
  (``python -m deploy.batch``). A pod that dies is started again up to
  ``batch.restart_limit`` times per index; a runner that exits 2 (the job must stop: the
  gateway refuses its calls, the model stays unreachable, too many rows fail) fails the
  whole Job at once (``podFailurePolicy``).

Both are named after the job and its run (a resume is a new Job: a Job's pod template is
immutable), labelled ``mlgate.io/inference-job: <id>`` and managed by mlgate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import orjson

from deploy.config import BatchSettings, KubernetesSettings
from deploy.control.jobs import InferenceJob
from deploy.k8s.manifests import ANNOTATION_HASH, MANAGED_BY, Manifest, spec_hash

JOB = ("batch/v1", "Job")
SECRET = ("v1", "Secret")
LABEL_JOB = "mlgate.io/inference-job"
RUNNER_CONTAINER = "runner"
TOKEN_KEY = "token"
EXIT_JOB_FAILED = 2  # deploy.batch's exit status when the job must stop
TTL_AFTER_FINISHED = 7 * 86400
RUNNER_RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"},
                    "limits": {"cpu": "1", "memory": "1Gi"}}


def job_object_name(job: InferenceJob) -> str:
    """``<id>-<run>``: unique per run, at most 63 characters (pods add their own suffix)."""
    run = hashlib.sha256(f"{job.id}/{job.generation}".encode()).hexdigest()[:6]
    return f"{job.id[:56]}-{run}"


def job_labels(job_id: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "mlgate-inference-job",
            "app.kubernetes.io/instance": job_id,
            "app.kubernetes.io/component": "inference-job",
            "app.kubernetes.io/part-of": "mlgate", **MANAGED_BY, LABEL_JOB: job_id}


def runner_args(job: InferenceJob, gateway_url: str) -> list[str]:
    document = orjson.dumps({"id": job.id, "spec": job.spec.to_dict()}).decode()
    args = ["--job", document, "--gateway", gateway_url]
    return [*args, "--retry-errors"] if job.retry_errors else args


def render_job(job: InferenceJob, kube: KubernetesSettings, batch: BatchSettings,
               gateway_url: str, token: str | None,
               env: Mapping[str, str] | None = None) -> list[Manifest]:
    """The run's objects; ``env``: configuration the runners need (buckets' endpoints)."""
    name = job_object_name(job)
    labels = job_labels(job.id)
    objects: list[Manifest] = []
    variables: list[Manifest] = [{"name": k, "value": v} for k, v in sorted((env or {}).items())]
    if token:
        objects.append({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": name, "namespace": kube.namespace,
                                     "labels": labels},
                        "type": "Opaque", "stringData": {TOKEN_KEY: token}})
        variables.append({"name": "MLGATE_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": name, "key": TOKEN_KEY}}})
    pod_spec: Manifest = {
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
        "containers": [{
            "name": RUNNER_CONTAINER, "image": batch.image,
            "imagePullPolicy": kube.image_pull_policy,
            "command": ["python", "-m", "deploy.batch"], "args": runner_args(job, gateway_url),
            "env": variables, "resources": RUNNER_RESOURCES,
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": {"allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}}}],
    }
    if batch.service_account:
        pod_spec["serviceAccountName"] = batch.service_account
    shards = job.spec.parallelism
    objects.append({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": kube.namespace, "labels": labels,
                     "annotations": {}},
        "spec": {
            "completionMode": "Indexed", "completions": shards, "parallelism": shards,
            "backoffLimit": batch.restart_limit * shards,
            "ttlSecondsAfterFinished": TTL_AFTER_FINISHED,
            "podFailurePolicy": {"rules": [{
                "action": "FailJob",
                "onExitCodes": {"containerName": RUNNER_CONTAINER, "operator": "In",
                                "values": [EXIT_JOB_FAILED]}}]},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    })
    for obj in objects:
        obj["metadata"].setdefault("annotations", {})[ANNOTATION_HASH] = spec_hash(obj)
    return objects


def job_state(obj: Manifest) -> tuple[str, str]:
    """``("running" | "complete" | "failed", reason)`` of a Job from its conditions."""
    for condition in (obj.get("status") or {}).get("conditions") or ():
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return "complete", ""
        if condition.get("type") == "Failed":
            reason = condition.get("message") or condition.get("reason") or "the Job failed"
            return "failed", f"{reason} (see the runner pods' logs)"
    return "running", ""
