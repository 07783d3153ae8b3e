"""An inference job as an Indexed batch/v1 Job (and its token's Secret), checked against
Kubernetes' schemas; the state read back from the Job's conditions."""

from __future__ import annotations

import kubernetes_validate
import orjson
import pytest

from deploy.batch.__main__ import parse_args
from deploy.config import BatchSettings, KubernetesSettings
from deploy.control.jobs import parse_job
from deploy.k8s.job_manifests import job_object_name, job_state, render_job
from deploy.k8s.manifests import ANNOTATION_HASH, LABEL_MANAGED_BY

K8S_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


def job(**spec):
    parsed = parse_job({"id": "wine-nightly", "spec": {
        "deployment": "wine", "input": "s3://data/in/", "output": "s3://data/out/",
        "format": "parquet", "parallelism": 4, **spec}}, lambda _d: "odahu-ml-server")
    parsed.generation = 1764000000000000
    return parsed


def render(token="signed-token", batch=None, **spec):
    return render_job(job(**spec), KubernetesSettings(), batch or BatchSettings(),
                      "http://mlgate.mlgate.svc", token,
                      {"MLGATE_BATCH_S3_ENDPOINT_URL": "http://minio.storage.svc:9000"})


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("variant", [{}, {"token": None}, {"retry": True},
                                     {"batch": BatchSettings(service_account="jobs",
                                                             image="r.example.com/mlgate:1")}])
def test_every_object_is_valid_kubernetes(version, variant):
    j = job()
    j.retry_errors = variant.get("retry", False)
    objects = render_job(j, KubernetesSettings(), variant.get("batch") or BatchSettings(),
                         "http://mlgate.mlgate.svc", variant.get("token", "t"))
    assert [o["kind"] for o in objects] == (["Job"] if "token" in variant else ["Secret", "Job"])
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_an_indexed_job_whose_pods_take_their_share():
    secret, kube_job = render()
    name = job_object_name(job())
    assert kube_job["metadata"]["name"] == secret["metadata"]["name"] == name
    assert len(name) <= 63 and name.startswith("wine-nightly-")
    assert kube_job["metadata"]["labels"]["mlgate.io/inference-job"] == "wine-nightly"
    assert kube_job["metadata"]["labels"][LABEL_MANAGED_BY] == "mlgate"
    assert ANNOTATION_HASH in kube_job["metadata"]["annotations"]
    spec = kube_job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 4, 4)
    assert spec["backoffLimit"] == BatchSettings().restart_limit * 4
    assert spec["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"] == [2]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    [runner] = pod["containers"]
    assert runner["command"] == ["python", "-m", "deploy.batch"]
    args = parse_args(runner["args"])  # what the runner itself will read
    assert args.gateway == "http://mlgate.mlgate.svc" and args.shard is None
    assert orjson.loads(args.job)["spec"]["parallelism"] == 4
    env = {e["name"]: e for e in runner["env"]}
    assert env["MLGATE_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": name, "key": "token"}
    assert env["MLGATE_BATCH_S3_ENDPOINT_URL"]["value"] == "http://minio.storage.svc:9000"
    assert secret["stringData"] == {"token": "signed-token"}
    assert "signed-token" not in orjson.dumps(kube_job).decode()  # only in the Secret


def test_each_run_is_a_new_job():
    first = job()
    second = job()
    second.generation += 1
    assert job_object_name(first) != job_object_name(second)
    assert job_object_name(job()) == job_object_name(first)  # stable: re-adopted on restart


@pytest.mark.parametrize(("conditions", "state"), [
    ([], "running"),
    ([{"type": "Suspended", "status": "True"}], "running"),
    ([{"type": "Complete", "status": "True"}], "complete"),
    ([{"type": "Failed", "status": "True", "reason": "PodFailurePolicy",
       "message": "Container runner for pod x failed with exit code 2"}], "failed"),
])
def test_job_state(conditions, state):
    got, reason = job_state({"status": {"conditions": conditions}})
    assert got == state
    if state == "failed":
        assert reason.startswith("Container runner for pod x failed with exit code 2")
