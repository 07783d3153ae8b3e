"""``mlgate up`` with ``runtime: kubernetes`` against the stand-in API server, and the sidecar.

The stand-in plays the cluster; a real predictor process on the demo wine model plays
the pods behind the deployment's Service (``kubernetes.service_host: 127.0.0.1`` and the
predictor's port as ``service_port``), so a call through the gateway reaches a model.
"""

from __future__ import annotations

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


def write_stack_files(tmp_path: Path, standin: StandIn, predictor: int,
                      min_replicas: int) -> list[str]:
    kubeconfig = standin.write_kubeconfig(tmp_path / "kubeconfig")
    config = tmp_path / "mlgate.yaml"
    config.write_text(yaml.safe_dump({"runtime": "kubernetes", "kubernetes": {
        "kubeconfig": str(kubeconfig), "service_host": "127.0.0.1",
        "service_port": predictor, "activation_timeout": 60}}))
    manifest = tmp_path / "wine.yaml"
    manifest.write_text(yaml.safe_dump({"kind": "ModelDeployment", "id": "wine-k8s", "spec": {
        "image": "registry.example.com/models/wine:1.0", "predictor": "odahu-ml-server",
        "minReplicas": min_replicas, "maxReplicas": 2}}))
    return ["--config", str(config), "-f", str(manifest)]


def kinds(standin: StandIn) -> dict[str, list[str]]:
    return {k: [o["metadata"]["name"] for o in standin.objects(k)]
            for k in ("Deployment", "Service", "HorizontalPodAutoscaler", "ScaledObject")}


def test_mlgate_up_drives_a_deployment_through_its_lifecycle(mlgate, standin, predictor,
                                                            tmp_path):
    args = write_stack_files(tmp_path, standin, predictor, min_replicas=1)
    stack = mlgate(args)
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
    assert "deployment wine-k8s: Ready, 1/1 replica(s) available" in stack.stderr()
    assert stack.stop() == 0
    assert kinds(standin)["Deployment"] == ["wine-k8s"]  # the cluster outlives the gateway

    writes = len(standin.writes())
    again = mlgate(args)  # a restart re-adopts: nothing to write, routable from the start
    with again.client() as client:
        wait_until(lambda: client.get("/model/wine-k8s/healthcheck").status_code == 200,
                   "the re-adopted deployment to route")
    assert len(standin.writes()) == writes
    assert "cluster already matches, nothing applied" in again.stderr()

    standin.fail_image_pull("wine-k8s")
    wait_until(lambda: "Failed" in again.stderr(), "the failure to be reported", attempts=100)
    assert "ImagePullBackOff" in again.stderr()


def test_scale_from_zero_holds_the_first_request(mlgate, standin, predictor, tmp_path):
    stack = mlgate(write_stack_files(tmp_path, standin, predictor, min_replicas=0))
    so = standin.get("ScaledObject", "wine-k8s")
    assert so["spec"]["minReplicaCount"] == 0
    assert standin.get("HorizontalPodAutoscaler", "wine-k8s") is None
    standin.scale("wine-k8s", 0)  # KEDA parks it at zero
    standin.roll_out("wine-k8s")
    wait_until(lambda: "wine-k8s: Ready, 0/0" in stack.stderr(), "Ready at zero replicas")

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


def test_invalid_image_for_the_cluster_stops_start_up(standin, predictor, tmp_path):
    args = write_stack_files(tmp_path, standin, predictor, min_replicas=1)
    manifest = tmp_path / "local.yaml"
    manifest.write_text("kind: ModelDeployment\nid: local\nspec:\n  image: file:///models/x\n"
                        "  predictor: odahu-ml-server\n")
    proc = subprocess.run([sys.executable, "-m", "deploy.cli", "up", "--port", "0",
                           "--data-dir", str(tmp_path / "d"), *args[:2], "-f", str(manifest)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "deployment local: the kubernetes runtime needs a container image" in proc.stderr


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
