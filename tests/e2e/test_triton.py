"""A real Triton (nvidia-pytriton's tritonserver) behind ``mlgate up``, called as users do.

One stack serves every read-only test of this module (Triton starts are slow on two
cores); the last test stops it and checks that nothing is left. The lifecycle tests
in ``test_triton_lifecycle.py`` start one more.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from tests.conftest import EXAMPLES, ROOT, wait_until
from tests.e2e.triton_helpers import binding_processes, leftovers, snapshot

pytestmark = pytest.mark.e2e

DEPLOYMENT = "wine-triton"
MOUNT = f"/model/{DEPLOYMENT}"
ROWS = [[7.0, 0.27, 0.36, 20.7, 0.045, 45.0, 170.0, 1.001, 3.0, 0.45, 8.8],
        [6.3, 0.3, 0.34, 1.6, 0.049, 14.0, 132.0, 0.994, 3.3, 0.49, 9.5],
        [8.1, 0.28, 0.4, 6.9, 0.05, 30.0, 97.0, 0.9951, 3.26, 0.44, 10.1]]


@pytest.fixture(scope="module")
def stack(mlgate_module, demo_models):
    stack = mlgate_module(["-f", str(EXAMPLES / "wine-triton.yaml")])
    stack.wait_state(DEPLOYMENT, "Ready")
    return stack


@pytest.fixture(scope="module")
def http(stack):
    with stack.client() as client:
        yield client


@pytest.fixture(scope="module")
def document(http) -> dict:
    resp = http.get(f"{MOUNT}/api/model/info")
    assert resp.status_code == 200
    return resp.json()


@pytest.fixture(scope="module")
def client(stack) -> triton_http.InferenceServerClient:
    """tritonclient pointed at the deployment's mount on the gateway."""
    c = triton_http.InferenceServerClient(url=stack.url.removeprefix("http://") + MOUNT)
    yield c
    c.close()


@pytest.fixture(scope="module")
def expected(demo_models, document) -> np.ndarray:
    """The model's own answer for ROWS as Triton receives them (FP32 inputs)."""
    model = mlflow.pyfunc.load_model(str(demo_models / "wine-v1"))
    columns = document["x-mlgate"]["input_columns"]
    frame = pd.DataFrame(np.array(ROWS, dtype=np.float32).astype(np.float64), columns=columns)
    return np.asarray(model.predict(frame), dtype=np.float64)


def infer_json(rows: list, **kw) -> dict:
    return {"inputs": [{"name": "input0", "shape": [len(rows), len(rows[0])], "datatype": "FP32",
                        "data": rows}], **kw}


def test_server_and_model_ready_through_the_gateway(client, stack):
    assert client.is_server_live(headers=stack.headers)
    assert client.is_server_ready(headers=stack.headers)
    assert client.is_model_ready("wine", headers=stack.headers)
    assert not client.is_model_ready("no-such-model", headers=stack.headers)


def test_metadata_and_model_headers(client, http, stack):
    meta = client.get_model_metadata("wine", headers=stack.headers)
    assert meta["inputs"] == [{"name": "input0", "datatype": "FP32", "shape": [-1, 11]}]
    assert meta["outputs"] == [{"name": "quality", "datatype": "FP64", "shape": [-1, 1]}]
    resp = http.get(f"{MOUNT}/v2/models/wine", headers={"Request-ID": "meta-1"})
    assert resp.headers["model-name"] == "wine" and resp.headers["model-version"] == "1"
    assert resp.headers["request-id"] == "meta-1"


def test_infer_json(http, expected):
    resp = http.post(f"{MOUNT}/v2/models/wine/infer", json=infer_json(ROWS, id="row-batch"))
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["model_name"] == "wine" and answer["id"] == "row-batch"
    (output,) = answer["outputs"]
    assert output["name"] == "quality" and output["shape"] == [3, 1]
    np.testing.assert_allclose(np.ravel(output["data"]), expected, rtol=1e-12)
    assert resp.headers["model-name"] == "wine" and "request-id" in resp.headers


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_infer_binary_tensors_with_tritonclient(client, stack, expected, compression):
    batch = np.array(ROWS, dtype=np.float32)
    tensor = triton_http.InferInput("input0", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=True)
    result = client.infer("wine", [tensor], outputs=[
        triton_http.InferRequestedOutput("quality", binary_data=True)],
        headers=stack.headers, request_compression_algorithm=compression,
        response_compression_algorithm=compression)
    np.testing.assert_allclose(result.as_numpy("quality").ravel(), expected, rtol=1e-12)


def test_errors_come_back_as_triton_json(http, client, stack):
    unknown = http.post(f"{MOUNT}/v2/models/no-such-model/infer", json=infer_json(ROWS[:1]))
    assert unknown.status_code == 404
    assert "unknown model" in unknown.json()["error"]
    assert http.get(f"{MOUNT}/v2/models/no-such-model").status_code == 404
    assert http.get(f"{MOUNT}/v2/models/no-such-model/ready").status_code == 400
    short = http.post(f"{MOUNT}/v2/models/wine/infer",
                      json=infer_json([row[:10] for row in ROWS[:1]]))
    assert short.status_code == 400
    assert "unexpected shape for input 'input0'" in short.json()["error"]
    wrong_type = infer_json(ROWS[:1])
    wrong_type["inputs"][0]["datatype"] = "FP64"
    resp = http.post(f"{MOUNT}/v2/models/wine/infer", json=wrong_type)
    assert resp.status_code == 400 and "expects 'FP32'" in resp.json()["error"]
    with pytest.raises(InferenceServerException) as err:
        tensor = triton_http.InferInput("input0", [1, 3], "FP32")
        tensor.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
        client.infer("wine", [tensor], headers=stack.headers)
    assert err.value.status() == "400"
    nan = triton_http.InferInput("input0", [1, 11], "FP32")
    nan.set_data_from_numpy(np.full((1, 11), np.nan, dtype=np.float32), binary_data=True)
    with pytest.raises(InferenceServerException) as err:
        client.infer("wine", [nan], headers=stack.headers)
    assert err.value.status() == "500"
    assert "model failed: Input X contains NaN" in err.value.message()
    assert "sklearn/utils/validation.py" not in err.value.message()  # not the model traceback
    gone = http.post("/model/no-such-deployment/v2/models/wine/infer", json=infer_json(ROWS))
    assert gone.status_code == 404 and "no-such-deployment" in gone.json()["message"]


def test_openapi_document_describes_the_v2_endpoints(document, http):
    assert document["info"]["title"] == "wine"
    assert document["x-mlgate"]["predictor"] == "triton"
    assert document["x-mlgate"]["has_examples"] is True
    assert len(document["x-mlgate"]["input_columns"]) == 11
    post = document["paths"]["/v2/models/wine/infer"]["post"]
    media = post["requestBody"]["content"]["application/json"]
    tensor = media["schema"]["properties"]["inputs"]["items"]["oneOf"][0]
    assert tensor["properties"]["datatype"]["enum"] == ["FP32"]
    assert "fixed acidity" in tensor["description"]
    # the example is real: sending it gives the documented answer
    example_answer = post["responses"]["200"]["content"]["application/json"]["example"]
    resp = http.post(f"{MOUNT}/v2/models/wine/infer", json=media["example"])
    assert resp.json()["outputs"] == example_answer["outputs"]
    assert {"/v2/models/wine", "/v2/models/wine/ready", "/v2/health/ready"} <= set(
        document["paths"])


def test_status_names_the_triton_model(stack):
    dep = stack.deployment(DEPLOYMENT)
    status = dep["status"]
    assert (status["state"], status["availableReplicas"]) == ("Ready", 1)
    assert (status["modelName"], status["modelVersion"]) == ("wine", "1")


def mlgate_cli(stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLGATE_URL": stack.url, "MLGATE_TOKEN": stack.token}
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_invoke_sends_a_v2_request(stack, document, expected, tmp_path):
    """``mlgate model invoke --md <triton deployment>``: an ODAHU file (columns in any
    order) becomes a v2 infer request; a v2 file is sent as it is."""
    model_order = document["x-mlgate"]["input_columns"]
    columns = sorted(model_order)
    assert columns != model_order
    rows = [[row[model_order.index(c)] for c in columns] for row in ROWS]
    odahu = tmp_path / "request.json"
    odahu.write_text(json.dumps({"columns": columns, "data": rows}))
    done = mlgate_cli(stack, "model", "invoke", "--md", DEPLOYMENT, "--file", str(odahu))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["model_name"] == "wine"
    (output,) = answer["outputs"]
    assert output["name"] == "quality" and output["shape"] == [3, 1]
    np.testing.assert_allclose(np.ravel(output["data"]), expected, rtol=1e-12)
    assert "quality: [" in done.stderr
    request_id = done.stderr.split("request-id: ")[1].strip()
    records = wait_records(stack.data_dir, "request_response", {request_id})
    assert records[request_id]["request_uri"] == f"{MOUNT}/v2/models/wine/infer"

    v2 = tmp_path / "v2.json"
    v2.write_text(json.dumps(infer_json(ROWS[:1], id="cli-v2")))
    done = mlgate_cli(stack, "model", "invoke", "--md", DEPLOYMENT, "--file", str(v2))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == "cli-v2"

    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"columns": columns[:10], "data": [r[:10] for r in rows]}))
    done = mlgate_cli(stack, "model", "invoke", "--md", DEPLOYMENT, "--file", str(wrong))
    assert done.returncode == 1
    assert "missing columns: volatile acidity" in done.stderr


def read_records(data_dir: Path, kind: str) -> list[dict]:
    records = []
    for path in sorted((data_dir / "storage" / kind).rglob("*.json")):
        for line in path.read_text().splitlines():
            records.append(json.loads(line))  # every line is one valid JSON document
    return records


def wait_records(data_dir: Path, kind: str, ids: set[str], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = {r["request_id"]: r for r in read_records(data_dir, kind) if r["request_id"] in ids}
        if set(found) == ids or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_records_are_stored_safely(stack, http, client):
    http.post(f"{MOUNT}/v2/models/wine/infer", json=infer_json(ROWS[:1]),
              headers={"Request-ID": "rec-json"})
    batch = np.array(ROWS[:2], dtype=np.float32)
    tensor = triton_http.InferInput("input0", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=True)
    client.infer("wine", [tensor], request_id="rec-bin-id",
                 outputs=[triton_http.InferRequestedOutput("quality", binary_data=True)],
                 headers={**stack.headers, "Request-ID": "rec-bin"})
    body = gzip.compress(json.dumps(infer_json(ROWS[:1])).encode())
    http.post(f"{MOUNT}/v2/models/wine/infer", content=body,
              headers={"Request-ID": "rec-gzip", "Content-Encoding": "gzip",
                       "Accept-Encoding": "gzip"})
    http.post(f"{MOUNT}/v2/models/wine/infer", json=infer_json([ROWS[0][:10]]),
              headers={"Request-ID": "rec-bad"})
    ids = {"rec-json", "rec-bin", "rec-gzip", "rec-bad"}
    requests = wait_records(stack.data_dir, "request_response", ids)
    bodies = wait_records(stack.data_dir, "response_body", ids)
    assert set(requests) == ids and set(bodies) == ids

    plain = requests["rec-json"]
    assert json.loads(plain["request_content"]) == infer_json(ROWS[:1])
    assert plain["model_name"] == "wine" and plain["model_version"] == "1"
    assert plain["request_uri"] == f"{MOUNT}/v2/models/wine/infer"
    assert plain["request_http_headers"][":path"] == "/v2/models/wine/infer"
    assert json.loads(bodies["rec-json"]["response_content"])["outputs"][0]["name"] == "quality"

    binary = requests["rec-bin"]
    header = json.loads(binary["request_content"])
    assert header["id"] == "rec-bin-id"
    assert header["inputs"][0]["parameters"]["binary_data_size"] == batch.nbytes
    assert base64.b64decode(binary["request_binary"]) == batch.tobytes()
    answer = bodies["rec-bin"]
    assert json.loads(answer["response_content"])["outputs"][0]["parameters"] == {
        "binary_data_size": 16}
    assert struct.unpack("<2d", base64.b64decode(answer["response_binary"]))[0] > 0

    zipped = requests["rec-gzip"]
    assert zipped["request_content_decoded"] == "gzip"
    assert json.loads(zipped["request_content"]) == infer_json(ROWS[:1])
    assert bodies["rec-gzip"]["response_content_decoded"] == "gzip"
    assert json.loads(bodies["rec-gzip"]["response_content"])["model_name"] == "wine"

    assert requests["rec-bad"]["response_status"] == "400"
    assert "unexpected shape" in json.loads(bodies["rec-bad"]["response_content"])["error"]


def test_gzip_answers_reach_the_caller_encoded(stack):
    raw = httpx.post(f"{stack.url}{MOUNT}/v2/models/wine/infer", headers={
        **stack.headers, "Accept-Encoding": "gzip"}, json=infer_json(ROWS[:1]))
    assert raw.headers["content-encoding"] == "gzip"  # httpx decoded it for us
    assert raw.json()["model_name"] == "wine"


def test_triton_scales_to_zero_and_a_held_request_is_served(stack, demo_models):
    """Created through the API with ``minReplicas: 0``: idle, it goes to zero (its
    OpenAPI document still answered by the gateway); a request wakes it up."""
    body = {"id": "triton-zero", "spec": {
        "image": f"file://{demo_models / 'wine-v1'}", "predictor": "triton",
        "minReplicas": 0, "maxReplicas": 1, "annotations": {
            "mlgate.io/scale-to-zero-after": "2", "mlgate.io/window": "0.5",
            "mlgate.io/scale-down-delay": "1"}}}
    with stack.client() as http:
        assert http.post("/api/v1/model/deployment", json=body).status_code == 201
        dep = stack.wait_state("triton-zero", "Ready")
        assert dep["status"]["modelName"] == "wine"
        wait_until(lambda: stack.deployment("triton-zero")["status"]["replicas"] == 0,
                   what="scale to zero when idle")
        wait_until(lambda: not [b for b in binding_processes(stack.data_dir)
                                if "triton-zero-0" in " ".join(b.cmdline())],
                   what="the Triton replica to exit")
        info = http.get("/model/triton-zero/api/model/info")
        assert info.status_code == 200 and info.json()["x-mlgate"]["predictor"] == "triton"
        assert stack.deployment("triton-zero")["status"]["replicas"] == 0  # not woken up

        resp = http.post("/model/triton-zero/v2/models/wine/infer", json=infer_json(ROWS[:1]))
        assert resp.status_code == 200, resp.text
        assert resp.json()["model_name"] == "wine" and resp.headers["model-version"] == "1"
        assert http.delete("/api/v1/model/deployment/triton-zero").status_code == 200
        wait_until(lambda: stack.deployment("triton-zero") is None, what="the deletion")


def test_a_model_triton_cannot_serve_ends_failed(stack, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors: {}\n")
    body = {"id": "triton-broken", "spec": {"image": f"file://{broken}", "predictor": "triton"}}
    with stack.client() as http:
        assert http.post("/api/v1/model/deployment", json=body).status_code == 201
        dep = stack.wait_state("triton-broken", "Failed", "Ready")
        assert dep["status"]["state"] == "Failed"
        assert "model cannot be loaded" in dep["status"]["reason"]
        assert "cannot serve model" in dep["status"]["reason"]
        resp = http.post("/model/triton-broken/v2/models/wine/infer", json=infer_json(ROWS))
        assert resp.status_code == 503 and "cannot serve model" in resp.json()["message"]
        assert http.delete("/api/v1/model/deployment/triton-broken").status_code == 200
        wait_until(lambda: stack.deployment("triton-broken") is None, what="the deletion")


def test_zz_stack_stops_and_leaves_nothing(stack):
    """Last in the module: SIGTERM the shared stack, then look for leftovers."""
    before = snapshot(stack.data_dir)
    assert before.tritonservers and before.segments
    assert stack.stop() == 0
    assert leftovers(stack.data_dir, before) == []
