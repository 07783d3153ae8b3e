"""The end-to-end slice: ``mlgate up`` with real MLflow models, over HTTP, then the bucket."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import psutil
import pytest

from tests.conftest import EXAMPLES, ROOT, SEED_COLUMNS, SEED_ROW, wait_until

pytestmark = pytest.mark.e2e
KEY_PATTERN = re.compile(
    r"^(request_response|response_body|feedback)/([^/]+)/([^/]+)/"
    r"year=(\d{4})/month=(\d{2})/day=(\d{2})/(\d{4})(\d{2})(\d{2})(\d{2})_\d+\.json$")


def records(data_dir: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    root = data_dir / "storage"
    for path in sorted(root.rglob("*.json")):
        key = path.relative_to(root).as_posix()
        m = KEY_PATTERN.match(key)
        assert m, f"object key {key} is not in the seed layout"
        year, month, day, y2, m2, d2 = m.group(4, 5, 6, 7, 8, 9)
        assert (year, month, day) == (y2, m2, d2)
        for line in path.read_bytes().splitlines():
            rec = orjson.loads(line)
            assert rec["model_name"] == m.group(2) and rec["model_version"] == m.group(3)
            out.setdefault(m.group(1), []).append(rec)
    return out


DEMO = ["-f", str(EXAMPLES / "wine-v1.yaml"), "-f", str(EXAMPLES / "wine-v2.yaml")]


@pytest.fixture
def stack(mlgate, demo_models):
    """A stack of its own, for tests that stop it or break its replicas."""
    return mlgate(DEMO)


@pytest.fixture(scope="module")
def shared(mlgate_module, demo_models):
    """One stack for the read-only tests of this module."""
    return mlgate_module(DEMO)


def test_seed_invocation_headers_feedback_and_records(stack):
    seed = {"columns": SEED_COLUMNS, "data": [SEED_ROW]}
    with stack.client() as client:
        resp = client.post("/model/wine-v1/api/model/invoke", json=seed,
                           headers={"Authorization": f"Bearer {stack.token}",
                                    "Cookie": "session=1", "accept": "application/json"})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["columns"] == ["quality"] and len(body["prediction"]) == 1
        assert isinstance(body["prediction"][0], float)
        generated = resp.headers["request-id"]
        assert re.fullmatch(r"[0-9a-f-]{36}", generated)
        assert resp.headers["model-name"] == "wine"
        assert resp.headers["model-version"] == "1.0"
        assert int(resp.headers["x-envoy-upstream-service-time"]) >= 0

        resp2 = client.post("/model/wine-v2/api/model/invoke", json=seed,
                            headers={"Request-ID": "my-id-42"})
        assert resp2.status_code == 200
        assert resp2.headers["request-id"] == "my-id-42"
        assert resp2.headers["model-version"] == "2.0"

        info = client.get("/model/wine-v1/api/model/info")
        assert info.status_code == 200 and info.json()["openapi"].startswith("3.")

        fb = client.post("/feedback/model/", json={"truthful": 1}, headers={
            "x-model-name": "wine", "x-model-version": "1.0", "Request-ID": generated})
        assert fb.status_code == 200
        assert fb.json() == {"error": False, "registered": True, "message": {
            "RequestID": generated, "ModelVersion": "1.0", "ModelName": "wine",
            "Payload": {"json": {"truthful": 1}}}}
    assert stack.stop() == 0

    stored = records(stack.data_dir)
    rr = {r["request_id"]: r for r in stored["request_response"]}
    rb = {r["request_id"]: r for r in stored["response_body"]}
    assert generated in rr and "my-id-42" in rr and generated in rb
    first = rr[generated]
    assert json.loads(first["request_content"]) == seed
    assert first["request_uri"] == "/model/wine-v1/api/model/invoke"
    assert first["request_http_method"] == "POST" and first["response_status"] == "200"
    assert first["request_http_headers"][":path"] == "/api/model/invoke"
    assert first["response_http_headers"]["model-name"] == "wine"
    assert first["response_http_headers"]["request-id"] == generated
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000", first["time"])
    assert json.loads(rb[generated]["response_content"]) == body
    assert first["deployment_id"] == rb[generated]["deployment_id"] == "wine-v1"
    assert "route_id" not in first and rb[generated]["response_status"] == "200"
    assert [f["payload"] for f in stored["feedback"]] == [{"json": {"truthful": 1}}]
    raw = b"".join(p.read_bytes() for p in (stack.data_dir / "storage").rglob("*.json"))
    assert stack.token.encode() not in raw and b"session=1" not in raw
    assert b'"authorization"' not in raw.lower() and b'"cookie"' not in raw.lower()


@pytest.mark.parametrize(("payload", "fragment"), [
    (b"not json", "JSON"),
    (b'{"columns": ["alcohol"], "data": [[1]]}', "missing"),
    (b'{"columns": ["nope"], "data": [[1]]}', "nope"),
    (b"{}", "data"),
    (b'{"data": [[1.7e308, 1.7e308, 1.7e308, 1.7e308, 1.7e308, 1.7e308, 1.7e308, 1.7e308, '
     b'1.7e308, 1.7e308, 1.7e308]]}', "model rejected the input"),
])
def test_model_client_errors_pass_through_as_400(shared, payload, fragment):
    with shared.client() as client:
        resp = client.post("/model/wine-v1/api/model/invoke", content=payload,
                           headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert fragment in resp.json()["message"]
    assert resp.headers["request-id"]


def test_gateway_errors(shared):
    with shared.client() as client:
        assert client.post("/model/unknown/api/model/invoke", json={}).status_code == 404
        bad_fb = client.post("/feedback/model/", content=b"{}", headers={
            "x-model-name": "../../etc", "x-model-version": "1", "Request-ID": "r"})
        assert bad_fb.status_code == 400 and bad_fb.json()["registered"] is False
        assert client.post("/feedback/model/", content=b"nope", headers={
            "x-model-name": "wine", "x-model-version": "1", "Request-ID": "r"}).status_code == 400


def replica_pids(stack, model_dir: str) -> list[int]:
    """Replica processes serving the model directory ``model_dir`` (e.g. ``models/wine-v1``)."""
    return [p.pid for p in psutil.Process(stack.proc.pid).children()
            if model_dir in " ".join(p.cmdline())]


def test_killed_replica_answers_json_then_is_restarted(stack):
    for dep_id in ("wine-v1", "wine-v2"):
        stack.wait_state(dep_id, "Ready")
    logs = stack.data_dir / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["wine-v1-0.log", "wine-v2-0.log"]
    pids = replica_pids(stack, "models/wine-v1")
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)
    seed = {"columns": SEED_COLUMNS, "data": [SEED_ROW]}
    with stack.client() as client:
        resp = client.post("/model/wine-v1/api/model/invoke", json=seed)
        # Served by the restarted replica (held meanwhile), or a JSON error if the
        # request raced the crash.
        assert resp.status_code in (200, 502, 503)
        if resp.status_code != 200:
            assert resp.json()["message"]
        assert client.get("/model/wine-v2/api/model/info").status_code == 200
        restarted = wait_until(
            lambda: [p for p in replica_pids(stack, "models/wine-v1") if p != pids[0]],
            what="a new wine-v1 replica")
        assert restarted
        stack.wait_state("wine-v1", "Ready")
        assert client.post("/model/wine-v1/api/model/invoke", json=seed).status_code == 200


def test_sigterm_stops_replicas_and_exits_zero(stack):
    for dep_id in ("wine-v1", "wine-v2"):
        stack.wait_state(dep_id, "Ready")
    children = psutil.Process(stack.proc.pid).children()
    assert len(children) == 2
    assert stack.stop(signal.SIGTERM) == 0
    for child in children:
        assert not child.is_running(), f"replica {child.pid} outlived mlgate"


def run_up(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.cli", "up", "--port", "0",
                           "--data-dir", str(tmp_path / "d"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_invalid_manifest_exits_2_naming_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("kind: ModelDeployment\nid: Wine_1\nspec:\n  predictor: odahu-ml-server\n")
    result = run_up(["-f", str(path)], tmp_path)
    assert result.returncode == 2
    assert "ID is not valid" in result.stderr and "empty image parameter" in result.stderr


def test_model_that_cannot_load_ends_failed_with_reason(mlgate, tmp_path):
    model = tmp_path / "broken-model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: nowhere\n")
    path = tmp_path / "broken.yaml"
    path.write_text(f"kind: ModelDeployment\nid: broken\nspec:\n  image: file://{model}\n"
                    "  predictor: odahu-ml-server\n")
    stack = mlgate(["-f", str(path)])
    dep = stack.wait_state("broken", "Failed")
    assert "cannot load model" in dep["status"]["reason"]
    with stack.client() as client:
        resp = client.post("/model/broken/api/model/invoke", json={})
    assert resp.status_code == 503 and "cannot load model" in resp.json()["message"]
    assert resp.headers["Retry-After"]


def test_container_image_is_refused_by_the_local_runtime(mlgate, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("kind: ModelDeployment\nid: c\nspec:\n  image: registry/wine:1\n"
                    "  predictor: odahu-ml-server\n")
    stack = mlgate(["-f", str(path)])
    dep = stack.wait_state("c", "Failed")
    assert "cannot run container image" in dep["status"]["reason"]
