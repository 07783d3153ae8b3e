"""``mlgate up --workers 2``: two processes on one port, as a user runs it.

Every call opens a new connection, so the kernel (``SO_REUSEPORT``) spreads them over
both processes; with 24+ connections the chance that one process got them all is below
one in eight million.
"""

from __future__ import annotations

import concurrent.futures
import re
import subprocess
import sys

import httpx
import psutil
import pytest

from tests.conftest import EXAMPLES, SEED_COLUMNS, SEED_ROW, wait_until

pytestmark = pytest.mark.e2e
SEED = {"columns": SEED_COLUMNS, "data": [SEED_ROW]}
DEPLOYMENTS = "/api/v1/model/deployment"


@pytest.fixture(scope="module")
def stack(mlgate_module, demo_models):
    return mlgate_module(["--workers", "2", "-f", str(EXAMPLES / "wine-v1.yaml")])


def fresh(stack, method: str, path: str, **kw) -> httpx.Response:
    """One request on a connection of its own."""
    headers = {**stack.headers, **kw.pop("headers", {})}
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        return client.request(method, path, headers=headers, **kw)


def workers_of(stack) -> list[psutil.Process]:
    return [p for p in psutil.Process(stack.proc.pid).children()
            if "deploy.serve.worker" in " ".join(p.cmdline())]


def metric(stack, name: str, **labels: str) -> float:
    text = fresh(stack, "GET", "/metrics").text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_both_processes_serve_the_data_plane_and_the_totals_add_up(stack):
    assert len(workers_of(stack)) == 1
    stack.wait_state("wine-v1", "Ready")
    before = metric(stack, "mlgate_requests_total", deployment="wine-v1", code="200")
    for _ in range(24):
        resp = fresh(stack, "POST", "/model/wine-v1/api/model/invoke", json=SEED)
        assert resp.status_code == 200, resp.text
        assert resp.headers["model-name"] == "wine" and resp.headers["request-id"]
    wait_until(lambda: metric(stack, "mlgate_requests_total", deployment="wine-v1",
                              code="200") == before + 24, 10, 0.2,
               what="both processes' requests in /metrics")


def test_the_control_plane_answers_through_any_process(stack):
    for _ in range(12):
        resp = fresh(stack, "GET", f"{DEPLOYMENTS}/wine-v1")
        assert resp.status_code == 200 and resp.json()["id"] == "wine-v1"
        refused = fresh(stack, "GET", DEPLOYMENTS, headers={"Authorization": ""})
        assert refused.status_code == 401 and "message" in refused.json()
    assert fresh(stack, "GET", "/health").json() == {"status": "ok"}


def test_feedback_on_either_process_is_durable(stack):
    for i in range(24):
        resp = fresh(stack, "POST", "/api/v1/feedback", json={"quality": i},
                     headers={"model-name": "wine", "model-version": "1.0",
                              "request-id": f"workers-fb-{i}"})
        assert resp.status_code == 200, resp.text
    spooled = wait_until(lambda: metric(stack, "mlgate_records_spooled_total",
                                        kind="feedback") >= 24, 10, 0.2,
                         what="feedback counted from both writers")
    assert spooled


def test_a_cold_start_asked_by_a_worker_is_served(stack):
    body = {"id": "sleepy", "spec": {
        "image": f"file://{EXAMPLES / 'models' / 'wine-v1'}", "predictor": "odahu-ml-server",
        "minReplicas": 0, "maxReplicas": 1,
        "annotations": {"mlgate.io/scale-to-zero-after": "2", "mlgate.io/window": "0.5",
                        "mlgate.io/scale-down-delay": "1"}}}
    assert fresh(stack, "POST", DEPLOYMENTS, json=body).status_code == 201
    stack.wait_state("sleepy", "Ready")
    wait_until(lambda: stack.deployment("sleepy")["status"]["replicas"] == 0,
               what="scale to zero when idle")
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(
            lambda _: fresh(stack, "POST", "/model/sleepy/api/model/invoke", json=SEED),
            range(12)))
    assert [r.status_code for r in answers] == [200] * 12, answers[0].text
    assert fresh(stack, "DELETE", f"{DEPLOYMENTS}/sleepy").status_code == 200


def test_stopping_stops_the_workers_and_keeps_every_record(mlgate, demo_models):
    stack = mlgate(["--workers", "3", "-f", str(EXAMPLES / "wine-v1.yaml")])
    workers = workers_of(stack)
    assert len(workers) == 2
    stack.wait_state("wine-v1", "Ready")
    for i in range(30):
        assert fresh(stack, "POST", "/api/v1/feedback", json={"n": i},
                     headers={"model-name": "wine", "model-version": "1.0",
                              "request-id": f"stop-{i}"}).status_code == 200
    assert stack.stop() == 0
    gone = psutil.wait_procs(workers, timeout=10)[1]
    assert gone == []
    stored = sum(p.read_bytes().count(b"\n")
                 for p in (stack.data_dir / "storage").rglob("*.json") if "feedback" in p.parts)
    assert stored == 30
    log = stack.stderr()
    served = [int(m) for m in re.findall(r"worker \d storage: \{'spooled': \{[^}]*'feedback': "
                                         r"(\d+)", log)]
    assert len(served) >= 1 and sum(served) < 30  # the workers took some, the primary the rest


def test_workers_must_be_a_sensible_number(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "deploy.cli", "up", "--workers", "0",
                           "--data-dir", str(tmp_path / "d")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "workers must be 1-64" in proc.stderr


def test_workers_log_in_the_configured_format(mlgate, tmp_path):
    """``logging.format: json`` holds for the workers' lines too, not only the primary's."""
    import orjson

    config = tmp_path / "mlgate.yaml"
    config.write_text("logging:\n  format: json\n")
    stack = mlgate(["--workers", "2", "--config", str(config)])
    assert stack.stop() == 0
    lines = [line for line in stack.stderr().splitlines() if line.strip()]
    records = [orjson.loads(line) for line in lines]  # every line, of every process, is JSON
    assert any(r["logger"] == "mlgate.worker" for r in records), lines
