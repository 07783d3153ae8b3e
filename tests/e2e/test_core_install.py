"""``pip install mlgate`` (the core, no extras) in a fresh virtualenv: the CLI, a sidecar that
proxies a call, ``mlgate up`` without deployments and the Python SDK (without DataFrames) all
work, and no model library (MLflow, scikit-learn, pandas, PyTriton) nor the Kubernetes client
nor pyarrow (the ``parquet`` extra) nor numpy and scipy (the ``analysis`` extra: the canary judge)
is installed; a route with ``spec.analysis`` is refused with 503 naming the extra."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.e2e.stub_predictor import stub_predictor

pytestmark = pytest.mark.e2e
UV = Path(sys.executable).parent / "uv"


@pytest.fixture(scope="module")
def core_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not UV.exists():
        pytest.skip("uv is not in the virtualenv (make install puts it there)")
    venv = tmp_path_factory.mktemp("core") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    source = tmp_path_factory.mktemp("src") / "mlgate"  # a clean copy: no .venv, no data
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv*", ".git", ".mlgate", "examples", "tests", "bench", "__pycache__", "*.pyc"))
    subprocess.run([str(UV), "pip", "install", "--quiet", "--python", str(venv / "bin/python"),
                    "-c", str(ROOT / "requirements/runtime.lock"), str(source)],
                   check=True, timeout=600)
    return venv


def test_the_core_has_no_model_library(core_venv):
    for module in ("mlflow", "sklearn", "pandas", "pytriton", "lightkube", "pyarrow", "duckdb",
                   "pyspark", "numpy", "scipy"):
        done = subprocess.run([str(core_venv / "bin/python"), "-c", f"import {module}"],
                              capture_output=True, text=True)
        assert done.returncode != 0 and "No module named" in done.stderr, module


def test_sidecar_help_and_a_proxied_call(core_venv, tmp_path):
    mlgate = str(core_venv / "bin/mlgate")
    helped = subprocess.run([mlgate, "sidecar", "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "--upstream" in helped.stdout
    with stub_predictor() as port:
        proc = subprocess.Popen(
            [mlgate, "sidecar", "--upstream", f"127.0.0.1:{port}", "--host", "127.0.0.1",
             "--port", "0", "--deployment-id", "wine", "--data-dir", str(tmp_path / "d")],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            assert line.startswith("mlgate sidecar ready on "), proc.stderr.read()
            with httpx.Client(base_url=line.split()[4], timeout=30) as client:
                resp = client.post("/api/model/invoke", json={"data": [[1.0]]},
                                   headers={"Request-ID": "core-1"})
            assert resp.status_code == 200, resp.text
            assert resp.json() == {"prediction": [5.5], "columns": ["quality"]}
            assert resp.headers["request-id"] == "core-1"
        finally:
            proc.terminate()
            assert proc.wait(30) == 0
    records = list((tmp_path / "d" / "storage" / "request_response").rglob("*.json"))
    assert records, "the sidecar stored no request_response record"


def test_up_without_deployments_runs_the_control_plane(core_venv, tmp_path):
    proc = subprocess.Popen([str(core_venv / "bin/mlgate"), "up", "--port", "0",
                             "--data-dir", str(tmp_path / "d")],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("mlgate ready on "), proc.stderr.read()
        token = subprocess.run([str(core_venv / "bin/mlgate"), "token", "--data-dir",
                                str(tmp_path / "d")], capture_output=True, text=True,
                               check=True).stdout.strip()
        url = line.split()[3]
        with httpx.Client(base_url=url, timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            assert client.get("/api/v1/model/deployment").json() == []
            dataset = client.get("/api/v1/dataset", params={"model": "wine"})
            assert dataset.status_code == 503  # the dataset extra is not in the core
            assert "pip install 'mlgate[dataset]'" in dataset.json()["message"]
            assert client.get("/api/v1/batch/job").json() == []
            analysed = client.post("/api/v1/model/route", json={"id": "wine", "spec": {
                "urlPrefix": "/custom/wine", "modelDeployments": [
                    {"mdName": "a", "weight": 100}, {"mdName": "b", "weight": 0}],
                "analysis": {"canary": "b", "metrics": [{"name": "error-rate"}]}}})
            assert analysed.status_code == 503, analysed.text
            assert "pip install 'mlgate[analysis]'" in analysed.json()["message"]
        listed = subprocess.run([str(core_venv / "bin/mlgate"), "deployment", "get", "-o",
                                 "table", "--url", url, "--token", token],
                                capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0 and listed.stdout.strip() == "No resources found.", \
            listed.stderr
        sdk = subprocess.run([str(core_venv / "bin/python"), "-c", (
            "import sys, mlgate\n"
            "with mlgate.Client(sys.argv[1], sys.argv[2], progress=False) as mg:\n"
            "    print(len(mg.deployments.list()), len(mg.routes.list()))\n"
            "    try:\n"
            "        mg.deployments.get('nope')\n"
            "    except mlgate.NotFound as exc:\n"
            "        print(exc.status)\n"
            "print('pandas' in sys.modules)\n"), url, token],
            capture_output=True, text=True, timeout=60)
        assert sdk.stdout.split() == ["0", "0", "404", "False"], sdk.stderr
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
