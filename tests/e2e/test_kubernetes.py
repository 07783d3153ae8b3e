"""``mlgate up`` with ``runtime: kubernetes`` against the stand-in API server, and the sidecar.

The stand-in plays the cluster; a real predictor process on the demo wine model plays
the pods behind the deployment's Service (``kubernetes.service_host: 127.0.0.1`` and the
predictor's port as ``service_port``), so a call through the gateway reaches a model.
Deployments come from ``-f`` manifests or the management API; both go through the
same state store and reconciler as with the local runtime.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ROOT, SEED_COLUMNS, SEED_ROW
from tests.k8s_standin import StandIn

pytestmark = pytest.mark.e2e
SEED = {"columns": SEED_COLUMNS, "data": [SEED_ROW]}


@pytest.fixture(scope="module")
def predictor(demo_models) -> Iterator[int]:
    """A real predictor on the wine-v1 model, on a socket bound here (no port race)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "predictor", "--model-uri",
                             str(demo_models / "wine-v1"), "--fd", str(sock.fileno())],
                            cwd=ROOT, pass_fds=(sock.fileno(),), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    sock.close()
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/healthcheck").status_code == 200,
                   "the predictor to load its model", attempts=1200)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture
def standin() -> Iterator[StandIn]:
    server = StandIn().start()
    yield server
    server.close()


def wait_until(check, what: str, attempts: int = 300, pause: float = 0.1) -> None:
    """Retry ``check`` (a bounded number of times) until it is true."""
    for _ in range(attempts):
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(pause)
    raise AssertionError(f"gave up waiting for {what}")


def write_config(tmp_path: Path, standin: StandIn, predictor: int) -> list[str]:
    kubeconfig = standin.write_kubeconfig(tmp_path / "kubeconfig")
    config = tmp_path / "mlgate.yaml"
    config.write_text(yaml.safe_dump({
        "runtime": "kubernetes",
        "kubernetes": {"kubeconfig": str(kubeconfig), "service_host": "127.0.0.1",
                       "service_port": predictor},
        "autoscaler": {"cold_start_timeout": 60}}))
    return ["--config", str(config)]


def wine_k8s(min_replicas: int, annotations: dict[str, str] | None = None) -> dict:
    return {"kind": "ModelDeployment", "id": "wine-k8s", "spec": {
        "image": "registry.example.com/models/wine:1.0", "predictor": "odahu-ml-server",
        "minReplicas": min_replicas, "maxReplicas": 2, "annotations": annotations or {}}}


def write_stack_files(tmp_path: Path, standin: StandIn, predictor: int, min_replicas: int,
                      annotations: dict[str, str] | None = None) -> list[str]:
    manifest = tmp_path / "wine.yaml"
    manifest.write_text(yaml.safe_dump(wine_k8s(min_replicas, annotations)))
    return [*write_config(tmp_path, standin, predictor), "-f", str(manifest)]


EXPECTED_KINDS = {"Deployment": ["wine-k8s"], "Service": ["wine-k8s"],
                  "HorizontalPodAutoscaler": ["wine-k8s"], "ScaledObject": []}


def kinds(standin: StandIn) -> dict[str, list[str]]:
    return {k: [o["metadata"]["name"] for o in standin.objects(k)]
            for k in ("Deployment", "Service", "HorizontalPodAutoscaler", "ScaledObject")}


def test_mlgate_up_drives_a_deployment_through_its_lifecycle(mlgate, standin, predictor,
                                                            tmp_path):
    # no cold-start hold: a request before the rollout is answered 503 at once
    args = write_stack_files(tmp_path, standin, predictor, min_replicas=1,
                             annotations={"mlgate.io/cold-start-timeout": "0"})
    data_dir = tmp_path / "data"
    stack = mlgate(args, data_dir=data_dir)
    wait_until(lambda: kinds(standin) == EXPECTED_KINDS, "the objects to be applied")
    assert kinds(standin) == {"Deployment": ["wine-k8s"], "Service": ["wine-k8s"],
                              "HorizontalPodAutoscaler": ["wine-k8s"], "ScaledObject": []}
    applied = {w.path.rsplit("/", 2)[-2] for w in standin.writes() if w.method == "PATCH"}
    assert applied == {"deployments", "services", "horizontalpodautoscalers"}
    with stack.client() as client:
        early = client.post("/model/wine-k8s/api/model/invoke", json=SEED)
        assert early.status_code == 503, early.text
        assert "no ready replica" in early.json()["message"]

        standin.start_rollout("wine-k8s")
        standin.roll_out("wine-k8s")
        wait_until(lambda: client.post("/model/wine-k8s/api/model/invoke",
                                       json=SEED).status_code == 200, "the deployment to route")
        resp = client.post("/model/wine-k8s/api/model/invoke", json=SEED,
                           headers={"Request-ID": "k8s-1"})
        assert resp.status_code == 200
        assert resp.json()["columns"] == ["quality"]
        assert resp.headers["request-id"] == "k8s-1"
        assert (resp.headers["model-name"], resp.headers["model-version"]) == ("wine", "1.0")
    assert "deployment wine-k8s: Ready (1/1 replicas)" in stack.stderr()
    assert stack.stop() == 0
    assert kinds(standin)["Deployment"] == ["wine-k8s"]  # the cluster outlives the gateway

    writes = len(standin.writes())
    again = mlgate(args, data_dir=data_dir)  # a restart re-adopts: nothing to write
    with again.client() as client:
        wait_until(lambda: client.get("/model/wine-k8s/healthcheck").status_code == 200,
                   "the re-adopted deployment to route")
    assert len(standin.writes()) == writes
    assert "cluster already matches, nothing applied" in again.stderr()

    standin.fail_image_pull("wine-k8s")
    wait_until(lambda: "Failed" in again.stderr(), "the failure to be reported", attempts=100)
    assert "ImagePullBackOff" in again.stderr()
    assert "ImagePullBackOff" in again.deployment("wine-k8s")["status"]["reason"]


def mlgate_cli(stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLGATE_URL": stack.url, "MLGATE_TOKEN": stack.token}
    done = subprocess.run([sys.executable, "-m", "deploy.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done


def test_the_management_api_drives_the_cluster(mlgate, standin, predictor, tmp_path):
    """Create through the API -> objects in the cluster -> the cluster reports availability
    -> Ready through the API -> a call reaches the Service -> a restart re-adopts without
    writing -> delete through the API -> the objects are gone."""
    args = write_config(tmp_path, standin, predictor)
    data_dir = tmp_path / "data"
    stack = mlgate(args, data_dir=data_dir)
    with stack.client() as client:
        body = {k: v for k, v in wine_k8s(1).items() if k != "kind"}
        created = client.post("/api/v1/model/deployment", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["status"]["state"] == "Processing"
        wait_until(lambda: kinds(standin) == EXPECTED_KINDS, "the objects to be applied")
        assert stack.deployment("wine-k8s")["status"]["state"] == "Processing"

        standin.roll_out("wine-k8s")
        dep = stack.wait_state("wine-k8s", "Ready", timeout=30)
        assert (dep["status"]["availableReplicas"], dep["status"]["replicas"]) == (1, 1)
        wait_until(lambda: stack.deployment("wine-k8s")["status"]["modelName"] == "wine",
                   "the model name in the status")
        assert stack.deployment("wine-k8s")["status"]["modelVersion"] == "1.0"
        resp = client.post("/model/wine-k8s/api/model/invoke", json=SEED,
                           headers={"Request-ID": "k8s-api-1"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["columns"] == ["quality"]
        assert resp.headers["model-name"] == "wine"
    request = tmp_path / "request.json"
    request.write_text(json.dumps(SEED))
    invoked = mlgate_cli(stack, "model", "invoke", "--md", "wine-k8s", "--file", str(request))
    assert json.loads(invoked.stdout)["columns"] == ["quality"]
    table = mlgate_cli(stack, "deployment", "get", "-o", "table").stdout
    assert any(line.split()[:3] == ["wine-k8s", "Ready", "1/1"] for line in table.splitlines())
    assert stack.stop() == 0

    writes = len(standin.writes())
    again = mlgate(args, data_dir=data_dir)
    wait_until(lambda: "deployment wine-k8s: cluster already matches" in again.stderr(),
               "the deployment to be re-adopted")
    with again.client() as client:
        assert again.deployment("wine-k8s")["status"]["state"] == "Ready"
        wait_until(lambda: client.post("/model/wine-k8s/api/model/invoke",
                                       json=SEED).status_code == 200, "routing after restart")
        assert len(standin.writes()) == writes  # re-adopted, nothing applied twice
        assert kinds(standin) == EXPECTED_KINDS  # no duplicates

        assert client.delete("/api/v1/model/deployment/wine-k8s").status_code == 200
        wait_until(lambda: again.deployment("wine-k8s") is None, "the deployment to go")
        assert all(names == [] for names in kinds(standin).values()), kinds(standin)
        assert client.post("/model/wine-k8s/api/model/invoke", json=SEED).status_code == 404


def test_scale_from_zero_holds_the_first_request(mlgate, standin, predictor, tmp_path):
    stack = mlgate(write_stack_files(tmp_path, standin, predictor, min_replicas=0))
    wait_until(lambda: standin.get("ScaledObject", "wine-k8s") is not None,
               "the ScaledObject to be applied")
    so = standin.get("ScaledObject", "wine-k8s")
    assert so["spec"]["minReplicaCount"] == 0
    assert standin.get("HorizontalPodAutoscaler", "wine-k8s") is None
    standin.roll_out("wine-k8s")  # one replica at first (a Deployment's default)
    stack.wait_state("wine-k8s", "Ready", timeout=30)
    standin.scale("wine-k8s", 0)  # KEDA parks it at zero
    standin.roll_out("wine-k8s")
    wait_until(lambda: stack.deployment("wine-k8s")["status"]["replicas"] == 0,
               "zero replicas")
    assert stack.deployment("wine-k8s")["status"]["state"] == "Ready"  # Ready, 0/0

    answers: queue.Queue = queue.Queue()

    def call() -> None:
        with stack.client(timeout=120) as client:
            answers.put(client.post("/model/wine-k8s/api/model/invoke", json=SEED))

    caller = threading.Thread(target=call)
    caller.start()
    standin.scale("wine-k8s", 1)  # KEDA saw the held request in flight
    standin.roll_out("wine-k8s")
    caller.join(120)
    resp = answers.get_nowait()
    assert resp.status_code == 200, resp.text
    assert resp.headers["model-name"] == "wine"


def test_an_image_the_cluster_cannot_run_ends_failed(mlgate, standin, predictor, tmp_path):
    args = write_config(tmp_path, standin, predictor)
    manifest = tmp_path / "local.yaml"
    manifest.write_text("kind: ModelDeployment\nid: local\nspec:\n  image: file:///models/x\n"
                        "  predictor: odahu-ml-server\n")
    stack = mlgate([*args, "-f", str(manifest)])
    dep = stack.wait_state("local", "Failed", timeout=30)
    assert "the kubernetes runtime needs a container image" in dep["status"]["reason"]
    assert standin.objects("Deployment") == []
    with stack.client() as client:
        resp = client.post("/model/local/api/model/invoke", json=SEED)
    assert resp.status_code == 503 and "needs a container image" in resp.json()["message"]


def test_mlgate_up_without_a_reachable_cluster_exits(tmp_path, predictor):
    gone = StandIn().start()
    args = write_config(tmp_path, gone, predictor)
    gone.close()  # its kubeconfig now points at a closed port
    proc = subprocess.run([sys.executable, "-m", "deploy.cli", "up", "--port", "0",
                           "--data-dir", str(tmp_path / "d"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    said = [line for line in proc.stderr.splitlines() if line.startswith("mlgate: ")]
    assert said and "listing Deployment" in said[0], proc.stderr


def test_sidecar_fronts_a_predictor(predictor, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "sidecar", "--upstream", f"127.0.0.1:{predictor}",
         "--host", "127.0.0.1", "--port", "0", "--deployment-id", "wine", "--no-records",
         "--data-dir", str(tmp_path / "d")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("mlgate sidecar ready on http://127.0.0.1:"), proc.stderr.read()
        url = line.split()[4]
        with httpx.Client(base_url=url, timeout=30) as client:
            wait_until(lambda: client.get("/healthcheck").headers.get("model-version") == "1.0",
                       "the sidecar to learn the model")
            resp = client.post("/api/model/invoke", json=SEED, headers={"Request-ID": "side-1"})
            assert resp.status_code == 200
            assert resp.json()["columns"] == ["quality"]
            assert resp.headers["request-id"] == "side-1"
            assert resp.headers["model-name"] == "wine"
            assert client.get("/health").json() == {"status": "ok"}
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
