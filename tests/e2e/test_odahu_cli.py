"""The real ODAHU CLI (odahuflowctl 1.6.1 from PyPI, in .venv-odahu) against ``mlgate up``."""

from __future__ import annotations

import ast
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLES, ROOT, SEED_COLUMNS, SEED_ROW

pytestmark = pytest.mark.e2e
ODAHU_VENV = ROOT / ".venv-odahu"
ODAHUFLOWCTL = ODAHU_VENV / "bin" / "odahuflowctl"


@pytest.fixture(scope="module")
def odahuflowctl(tmp_path_factory) -> callable:
    """Run odahuflowctl with its own config file; the virtualenv is built if missing."""
    if not (ODAHU_VENV / ".installed").exists():
        subprocess.run(["make", "odahu-cli"], cwd=ROOT, check=True, timeout=600,
                       capture_output=True)
    config = tmp_path_factory.mktemp("odahu") / "config"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("API_", "ODAHUFLOW"))}
    env.update(ODAHUFLOW_CONFIG=str(config), ODAHUFLOWCTL_NONINTERACTIVE="true")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(ODAHUFLOWCTL), *args], env=env, capture_output=True,
                                text=True, timeout=600)
        if check:
            assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result

    return run


@pytest.fixture(scope="module")
def stack(mlgate_module, demo_models):
    return mlgate_module([])


def write(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def test_odahuflowctl_lifecycle(stack, odahuflowctl, tmp_path):
    login = odahuflowctl("login", "--url", stack.url, "--token", stack.token or "none")
    assert "Success! Credentials have been saved." in login.stdout

    dep_file = write(tmp_path / "deploy.yaml", {
        "kind": "ModelDeployment", "id": "odahu-wine", "spec": {
            "image": f"file://{EXAMPLES / 'models' / 'wine-v1'}", "predictor": "odahu-ml-server",
            "minReplicas": 1, "maxReplicas": 1,
            "resources": {"requests": {"cpu": "125m", "memory": "128Mi"},
                          "limits": {"cpu": "250m", "memory": "256Mi"}}}})
    created = odahuflowctl("deployment", "create", "-f", str(dep_file), "--timeout", "300")
    assert "Model odahu-wine was deployed" in created.stdout

    as_json = json.loads(odahuflowctl("deployment", "get", "--id", "odahu-wine",
                                      "--output-format", "json").stdout)
    assert as_json[0]["id"] == "odahu-wine" and as_json[0]["status"]["state"] == "Ready"
    assert as_json[0]["status"]["modelName"] == "wine"
    assert as_json[0]["spec"]["roleName"] == "role-odahu-wine"
    as_yaml = yaml.safe_load(odahuflowctl("deployment", "get", "-o", "yaml").stdout)
    assert [d["id"] for d in as_yaml] == ["odahu-wine"]
    table = odahuflowctl("deployment", "get", "-o", "table").stdout
    # texttable wraps every cell at a few characters: look for the pieces
    assert table.startswith("+--") and "| Model |" in table and "odahu" in table
    name = odahuflowctl("deployment", "get", "--id", "odahu-wine", "-o",
                        "jsonpath=[*].status.modelName").stdout.strip()
    assert name == "wine"

    info = ast.literal_eval(odahuflowctl("model", "info", "--md", "odahu-wine").stdout)
    assert info["info"]["title"] == "wine"
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"columns": SEED_COLUMNS, "data": [SEED_ROW]}))
    invoked = json.loads(odahuflowctl("model", "invoke", "--md", "odahu-wine", "--file",
                                      str(request)).stdout)
    assert invoked["columns"] == ["quality"] and len(invoked["prediction"]) == 1

    route_file = write(tmp_path / "route.yaml", {
        "kind": "ModelRoute", "id": "odahu-route", "spec": {
            "urlPrefix": "/custom/odahu", "modelDeployments": [{"mdName": "odahu-wine"}]}})
    route_out = odahuflowctl("route", "create", "-f", str(route_file), "--timeout", "60")
    assert "Model Route odahu-route is ready" in route_out.stdout
    routes = json.loads(odahuflowctl("route", "get", "-o", "json").stdout)
    by_id = {r["id"]: r for r in routes}
    assert by_id["odahu-route"]["spec"]["modelDeployments"] == [
        {"mdName": "odahu-wine", "weight": 100}]
    assert by_id["odahu-route"]["status"]["edgeUrl"] == f"{stack.url}/custom/odahu"
    assert any(r["default"] and r["spec"]["urlPrefix"] == "/model/odahu-wine" for r in routes)
    one = yaml.safe_load(odahuflowctl("route", "get", "--id", "odahu-route").stdout)
    assert one[0]["id"] == "odahu-route"

    deleted = odahuflowctl("deployment", "delete", "--id", "odahu-wine")
    assert "Model deployment odahu-wine was deleted" in deleted.stdout
    assert stack.deployment("odahu-wine") is None


def test_odahuflowctl_shows_validation_and_conflict_messages(stack, odahuflowctl, tmp_path):
    odahuflowctl("login", "--url", stack.url, "--token", stack.token or "none")
    bad = write(tmp_path / "bad.yaml", {"kind": "ModelDeployment", "id": "odahu-bad",
                                        "spec": {"predictor": "odahu-ml-server",
                                                 "minReplicas": 2, "maxReplicas": 1}})
    result = odahuflowctl("deployment", "create", "-f", str(bad), "--no-wait", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "Validation of model deployment is failed" in output
    assert "empty image parameter" in output and "(status: 400)" in output

    ok = write(tmp_path / "ok.yaml", {"kind": "ModelDeployment", "id": "odahu-dup", "spec": {
        "image": "registry/wine:1", "predictor": "triton"}})
    odahuflowctl("deployment", "create", "-f", str(ok), "--no-wait")
    again = odahuflowctl("deployment", "create", "-f", str(ok), "--no-wait", check=False)
    assert again.returncode != 0 and "already exists (status: 409)" in again.stdout + again.stderr
    ignored = odahuflowctl("deployment", "create", "-f", str(ok), "--no-wait",
                           "--ignore-if-exists")
    assert "Deployment already exists" in ignored.stdout
    odahuflowctl("deployment", "delete", "--id", "odahu-dup")
    gone = odahuflowctl("deployment", "delete", "--id", "odahu-dup", "--ignore-not-found")
    assert gone.returncode == 0


def test_odahuflowctl_round_trips_spec_quality_unchanged(stack, odahuflowctl, tmp_path):
    """odahuflowctl knows only ODAHU's spec fields; ``spec.quality`` travels in the
    ``mlgate.io/quality`` annotation it carries, so reading, editing and writing a deployment
    with it keeps the quality spec, and a manifest can set it through the annotation."""
    odahuflowctl("login", "--url", stack.url, "--token", stack.token or "none")
    quality = {"task": "regression", "prediction": "$.prediction", "label": "$.truthful",
               "window": "15m"}
    image = f"file://{EXAMPLES / 'models' / 'wine-v1'}"
    with stack.client() as client:
        created = client.post("/api/v1/model/deployment", json={
            "id": "odahu-quality", "spec": {"image": image, "predictor": "odahu-ml-server",
                                            "minReplicas": 0, "maxReplicas": 1,
                                            "quality": quality}})
        assert created.status_code == 201, created.text
    shown = yaml.safe_load(odahuflowctl("deployment", "get", "--id", "odahu-quality",
                                        "-o", "yaml").stdout)[0]
    assert "quality" not in shown["spec"]  # the ODAHU SDK drops what it does not know ...
    annotation = shown["spec"]["annotations"]["mlgate.io/quality"]  # ... but keeps this
    assert json.loads(annotation) == quality
    shown["spec"]["maxReplicas"] = 2
    shown.pop("status", None)
    odahuflowctl("deployment", "edit", "-f", str(write(tmp_path / "edit.yaml", shown)),
                 "--no-wait")
    back = stack.deployment("odahu-quality")
    assert back["spec"]["quality"] == quality and back["spec"]["maxReplicas"] == 2
    assert back["status"]["quality"]["state"] == "configured"

    manifest = write(tmp_path / "new.yaml", {
        "kind": "ModelDeployment", "id": "odahu-quality-2", "spec": {
            "image": image, "predictor": "odahu-ml-server", "minReplicas": 0,
            "annotations": {"mlgate.io/quality": "{task: regression, label: $.y, window: 1h}"}}})
    odahuflowctl("deployment", "create", "-f", str(manifest), "--no-wait")
    second = stack.deployment("odahu-quality-2")
    assert second["spec"]["quality"] == {"task": "regression", "label": "$.y", "window": "1h"}
    bad = write(tmp_path / "bad.yaml", {
        "kind": "ModelDeployment", "id": "odahu-quality-3", "spec": {
            "image": image, "predictor": "odahu-ml-server",
            "annotations": {"mlgate.io/quality": '{"task": "ranking"}'}}})
    refused = odahuflowctl("deployment", "create", "-f", str(bad), "--no-wait", check=False)
    assert refused.returncode != 0
    assert "annotation mlgate.io/quality: quality.task must be one of regression, " \
           "classification, got 'ranking'" in refused.stdout + refused.stderr
    for dep_id in ("odahu-quality", "odahu-quality-2"):
        odahuflowctl("deployment", "delete", "--id", dep_id)
