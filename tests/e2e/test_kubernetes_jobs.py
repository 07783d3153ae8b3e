"""An inference job on the Kubernetes runtime, against the stand-in API server.

mlgate applies the run's Secret and Indexed Job (the stand-in validates both with
``kubernetes-validate``); this test then plays the Job controller and its pods: it runs
each index's runner exactly as the pod would (the Job's command, arguments and
environment, the token from the Secret, ``JOB_COMPLETION_INDEX``) against moto's S3 and
the gateway, and marks the Job Complete. mlgate reads the counts back from the output
and ends the job; deleting it deletes the Job and the Secret.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT, wait_until
from tests.e2e.test_batch_jobs import csv_bytes, dataset, outputs_by_row
from tests.e2e.test_kubernetes import predictor, standin, wine_k8s  # noqa: F401 (fixtures)
from tests.storage.servers import S3_ENV

pytestmark = pytest.mark.e2e


def test_a_job_runs_as_an_indexed_job_and_ends_with_the_counts_of_its_output(
        mlgate, standin, predictor, s3_server, tmp_path):  # noqa: F811
    bucket = s3_server.new_bucket()
    header, data = dataset({"a.csv": 300, "part-1.csv": 1300})  # part-1 has the bad row
    for name, rows in data.items():
        s3_server.client.put_object(Bucket=bucket, Key=f"in/{name}", Body=csv_bytes(header,
                                                                                   rows))
    config = tmp_path / "mlgate.yaml"
    config.write_text(yaml.safe_dump({
        "runtime": "kubernetes",
        "kubernetes": {"kubeconfig": str(standin.write_kubeconfig(tmp_path / "kubeconfig")),
                       "service_host": "127.0.0.1", "service_port": predictor},
        "batch": {"s3_endpoint_url": s3_server.url, "image": "registry.example.com/mlgate:1"}}))
    manifest = tmp_path / "wine.yaml"
    manifest.write_text(yaml.safe_dump(wine_k8s(1)))
    stack = mlgate(["--config", str(config), "-f", str(manifest)], env=S3_ENV)
    wait_until(lambda: standin.get("Deployment", "wine-k8s"), 30,
               what="the model's Deployment to be applied")
    standin.start_rollout("wine-k8s")
    standin.roll_out("wine-k8s")
    stack.wait_state("wine-k8s", "Ready", timeout=60)

    job = {"kind": "InferenceJob", "id": "wine-k8s-nightly", "spec": {
        "deployment": "wine-k8s", "input": f"s3://{bucket}/in/", "output": f"s3://{bucket}/out/",
        "format": "csv", "parallelism": 2, "batchSize": 200}}
    with stack.client() as client:
        local = client.post("/api/v1/batch/job", json={**job, "id": "local-path", "spec": {
            **job["spec"], "input": str(tmp_path) + "/"}})
        assert local.status_code == 400 and "runners run in pods" in local.json()["message"]
        assert client.post("/api/v1/batch/job", json=job).status_code == 201
    [kube_job] = wait_until(lambda: standin.objects("Job"), 30, what="the Job to be applied")
    [secret] = standin.objects("Secret")
    name = kube_job["metadata"]["name"]
    assert secret["metadata"]["name"] == name
    spec = kube_job["spec"]
    assert (spec["completionMode"], spec["completions"]) == ("Indexed", 2)
    [container] = spec["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/mlgate:1"
    wait_until(lambda: stack_job(stack)["status"]["state"] == "Running", 30,
               what="the job to be Running")

    # the pods: the Job's command in this environment, the gateway reached at its test URL
    args = list(container["args"])
    args[args.index("--gateway") + 1] = stack.url
    env = {**os.environ, **S3_ENV, "MLGATE_TOKEN": secret["stringData"]["token"]}
    env.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
    for index in range(2):
        done = subprocess.run([sys.executable, *container["command"][1:], *args], cwd=ROOT,
                              env={**env, "JOB_COMPLETION_INDEX": str(index)},
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == '{"event":"end","outcome":"done","reason":""}'
    standin.set_status("Job", name, {"succeeded": 2, "conditions": [
        {"type": "Complete", "status": "True"}]})

    ended = wait_until(lambda: (j := stack_job(stack))["status"]["state"] != "Running" and j,
                       60, what="the job to end")
    status = ended["status"]
    assert status["state"] == "SucceededWithErrors", status
    assert (status["rowsTotal"], status["rowsDone"], status["rowsFailed"]) == (1600, 1599, 1)
    assert (status["objectsTotal"], status["objectsDone"]) == (2, 2)
    _, rows = outputs_by_row(s3_server.read(bucket, "out/a.csv"), "csv")
    assert [int(r["row"]) for r in rows] == list(range(300))

    with stack.client() as client:
        assert client.delete("/api/v1/batch/job/wine-k8s-nightly").status_code == 200
    wait_until(lambda: not standin.objects("Job") and not standin.objects("Secret"), 30,
               what="the Job and the Secret to be deleted")


def stack_job(stack) -> dict:
    with stack.client() as client:
        return client.get("/api/v1/batch/job/wine-k8s-nightly").json()

