"""The management API and the ``mlgate`` CLI against a real ``mlgate up`` with MLflow models."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import EXAMPLES, ROOT, SEED_COLUMNS, SEED_ROW, wait_until

pytestmark = pytest.mark.e2e
DEPLOYMENTS = "/api/v1/model/deployment"
ROUTES = "/api/v1/model/route"


@pytest.fixture(scope="module")
def stack(mlgate_module, demo_models):
    """An empty stack (no -f) shared by this module; tests create what they need."""
    return mlgate_module([])


def manifest(dep_id: str, model: str = "wine-v1", **spec) -> dict:
    return {"kind": "ModelDeployment", "id": dep_id, "spec": {
        "image": f"file://{EXAMPLES / 'models' / model}", "predictor": "odahu-ml-server",
        **spec}}


def cli(stack, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLGATE_URL": stack.url, "MLGATE_TOKEN": stack.token}
    result = subprocess.run([sys.executable, "-m", "deploy.cli", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr
    return result


# -- validation: every broken field is named ------------------------------------------------


@pytest.mark.parametrize(("change", "fragment"), [
    ({"id": "Wine_1"}, "ID is not valid"),
    ({"id": ""}, 'empty "ID"'),
    ({"id": "a" * 64}, "ID is not valid"),
    ({"spec": {"predictor": "odahu-ml-server"}}, "empty image parameter"),
    ({"spec": {"image": "file:///m"}}, "empty predictor parameter"),
    ({"spec": {"image": "file:///m", "predictor": "tf"}}, "predictor 'tf' is not supported"),
    ({"spec": {"image": "file:///m", "predictor": "triton", "minReplicas": -1}},
     "minimum number of replicas parameter must not be less than 0"),
    ({"spec": {"image": "file:///m", "predictor": "triton", "maxReplicas": 0}},
     "maximum number of replicas parameter must not be less than 1"),
    ({"spec": {"image": "file:///m", "predictor": "triton", "minReplicas": 3, "maxReplicas": 2}},
     "must not be less than minimum number of replicas"),
    ({"spec": {"image": "file:///m", "predictor": "triton", "minReplicas": "1"}},
     "minReplicas must be an integer"),
    ({"spec": {"image": "file:///m", "predictor": "triton", "livenessProbeInitialDelay": -2}},
     "livenessProbeInitialDelay must be non-negative"),
    ({"spec": {"image": "file:///m", "predictor": "triton", "readinessProbeInitialDelay": -2}},
     "readinessProbeInitialDelay must be non-negative"),
    ({"spec": {"image": "file:///m", "predictor": "triton",
               "resources": {"limits": {"cpu": "lots"}}}}, "resources.limits.cpu"),
    ({"spec": {"image": "file:///m", "predictor": "triton",
               "resources": {"requests": {"memory": "-1Gi"}}}}, "resources.requests.memory"),
    ({"spec": {"image": "file:///m", "predictor": "triton", "annotations": ["a"]}},
     "annotations must be a map of strings"),
    ({"spec": {"image": "file:///m", "predictor": "triton",
               "annotations": {"mlgate.io/target-concurrency": "zero"}}},
     "annotation mlgate.io/target-concurrency must be a number"),
    ({"spec": {"image": "file:///m", "predictor": "triton", "replicas": 2}},
     "unknown spec field(s): replicas"),
    ({"spec": "wine"}, "spec must be an object"),
])
def test_deployment_validation_errors_answer_400_naming_the_field(stack, change, fragment):
    body = {**manifest("valid-id"), **change}
    with stack.client() as client:
        for method in ("POST", "PUT"):
            resp = client.request(method, DEPLOYMENTS, json=body)
            assert resp.status_code == 400, resp.text
            message = resp.json()["message"]
            assert message.startswith("Validation of model deployment is failed: ")
            assert fragment in message
            assert set(resp.json()) == {"message"}


def test_every_broken_field_in_one_message(stack):
    body = {"id": "Bad_Id", "spec": {"minReplicas": -1, "resources": {"limits": {"cpu": "x"}}}}
    with stack.client() as client:
        message = client.post(DEPLOYMENTS, json=body).json()["message"]
    for fragment in ("ID is not valid", "empty image parameter", "empty predictor parameter",
                     "minimum number of replicas", "resources.limits.cpu"):
        assert fragment in message


@pytest.mark.parametrize(("body", "fragment"), [
    (b"not json", "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
])
def test_body_that_is_not_an_object_is_400(stack, body, fragment):
    with stack.client() as client:
        resp = client.post(DEPLOYMENTS, content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and fragment in resp.json()["message"]


def test_not_found_and_conflicts(stack):
    with stack.client() as client:
        for method, path in (("GET", f"{DEPLOYMENTS}/ghost"), ("DELETE", f"{DEPLOYMENTS}/ghost"),
                             ("GET", f"{DEPLOYMENTS}/ghost/default-route"),
                             ("GET", f"{ROUTES}/ghost"), ("DELETE", f"{ROUTES}/ghost")):
            resp = client.request(method, path)
            assert resp.status_code == 404
            assert resp.json() == {"message": 'entity "ghost" is not found'}
        assert client.put(DEPLOYMENTS, json=manifest("ghost")).status_code == 404
        conflict = {"id": "conflict", "spec": {"image": "registry/x:1", "predictor": "triton"}}
        assert client.post(DEPLOYMENTS, json=conflict).status_code == 201
        again = client.post(DEPLOYMENTS, json=manifest("conflict"))
        assert again.status_code == 409
        assert again.json() == {"message": 'entity "conflict" already exists'}
        assert client.get("/api/v1/model/nothing").json()["message"]
        assert client.delete(f"{DEPLOYMENTS}/conflict").status_code == 200


@pytest.mark.parametrize(("spec", "fragment"), [
    ({"urlPrefix": "/model/x", "modelDeployments": [{"mdName": "routed"}]}, "forbidden"),
    ({"urlPrefix": "custom", "modelDeployments": [{"mdName": "routed"}]}, "start with slash"),
    ({"urlPrefix": "/custom/x", "modelDeployments": []}, "at least one element"),
    ({"urlPrefix": "/custom/x", "modelDeployments": [{"mdName": "ghost"}]},
     'entity "ghost" is not found'),
    ({"urlPrefix": "/custom/x", "modelDeployments": [{"mdName": "routed", "weight": 40}]},
     "100 weight"),
    ({"urlPrefix": "/custom/x", "mirror": "ghost",
      "modelDeployments": [{"mdName": "routed"}]}, 'mirror: entity "ghost" is not found'),
])
def test_route_validation_errors(stack, routed, spec, fragment):
    with stack.client() as client:
        resp = client.post(ROUTES, json={"id": "bad-route", "spec": spec})
    assert resp.status_code == 400
    assert resp.json()["message"].startswith("Validation of model route is failed: ")
    assert fragment in resp.json()["message"]


@pytest.fixture(scope="module")
def routed(stack):
    """A deployment for route tests (a container image: stored, never run here)."""
    body = {"id": "routed", "spec": {"image": "registry/wine:1", "predictor": "triton"}}
    with stack.client() as client:
        assert client.post(DEPLOYMENTS, json=body).status_code == 201
    return "routed"


def test_routes_crud_and_default_route_is_read_only(stack, routed):
    route = {"kind": "ModelRoute", "id": "wine-custom", "spec": {
        "urlPrefix": "/custom/wine", "modelDeployments": [{"mdName": routed}]}}
    with stack.client() as client:
        created = client.post(ROUTES, json=route)
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["spec"]["modelDeployments"] == [{"mdName": routed, "weight": 100}]
        assert body["status"] == {"state": "Ready", "edgeUrl": f"{stack.url}/custom/wine"}
        assert client.post(ROUTES, json=route).status_code == 409
        route["spec"]["mirror"] = routed
        assert client.put(ROUTES, json=route).json()["spec"]["mirror"] == routed
        default = client.get(f"{DEPLOYMENTS}/{routed}/default-route").json()
        assert default["default"] is True and default["spec"]["urlPrefix"] == f"/model/{routed}"
        assert default["status"]["edgeUrl"] == f"{stack.url}/model/{routed}"
        ids = {r["id"] for r in client.get(ROUTES).json()}
        assert {"wine-custom", default["id"]} <= ids
        default_edit = {"id": default["id"], "spec": {"urlPrefix": "/custom/other",
                                                      "modelDeployments": [{"mdName": routed}]}}
        forbidden = client.put(ROUTES, json=default_edit)
        assert forbidden.status_code == 403 and "default route" in forbidden.json()["message"]
        assert client.delete(f"{ROUTES}/{default['id']}").status_code == 403
        assert client.delete(f"{ROUTES}/wine-custom").json() == {
            "message": "Model route wine-custom was deleted"}


def test_swagger_ui_and_openapi_document_are_served_locally(stack):
    with stack.client(follow_redirects=True) as client:
        page = client.get("/swagger/index.html")
        assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
        assert "http" not in page.text.split("<body>")[1]  # no CDN
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-initializer.js",
                      "swagger-ui-standalone-preset.js"):
            assert client.get(f"/swagger/{asset}").status_code == 200
        assert client.get("/swagger").url.path == "/swagger/index.html"
        doc = client.get("/swagger/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    jobs = "/api/v1/batch/job"
    assert set(doc["paths"]) == {DEPLOYMENTS, f"{DEPLOYMENTS}/{{id}}",
                                 f"{DEPLOYMENTS}/{{id}}/default-route", ROUTES, f"{ROUTES}/{{id}}",
                                 jobs, f"{jobs}/{{id}}", f"{jobs}/{{id}}/resume",
                                 "/api/v1/records",
                                 f"{DEPLOYMENTS}/{{id}}/quality", f"{ROUTES}/{{id}}/quality",
                                 "/api/v1/dataset", f"{ROUTES}/{{id}}/rollout",
                                 *(f"{ROUTES}/{{id}}/rollout/{action}" for action in (
                                     "promote", "abort", "pause", "resume")),
                                 "/api/v1/token/revocation", "/api/v1/token/revocation/{id}"}
    refs = {ref.rsplit("/", 1)[1] for ref in _refs(doc)}
    assert refs <= set(doc["components"]["schemas"])


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


# -- the whole lifecycle through the mlgate CLI ---------------------------------------------


def test_lifecycle_through_the_mlgate_cli(stack, tmp_path):
    path = tmp_path / "wine.yaml"
    path.write_text(yaml.safe_dump({**manifest("cli-wine"), "spec": {
        **manifest("cli-wine")["spec"], "image": "file://./models/wine-v1",
        "minReplicas": 1, "maxReplicas": 2}}))
    (tmp_path / "models").symlink_to(EXAMPLES / "models")
    created = cli(stack, "deployment", "create", "-f", str(path), "--wait", "--timeout", "240")
    assert "Model deployment cli-wine created" in created.stdout
    assert "cli-wine: Ready (1/1 replicas available), model wine 1.0" in created.stdout

    as_json = json.loads(cli(stack, "deployment", "get", "--id", "cli-wine", "-o", "json").stdout)
    assert as_json[0]["spec"]["image"] == f"file://{(tmp_path / 'models' / 'wine-v1').resolve()}"
    assert as_json[0]["status"]["state"] == "Ready"
    as_yaml = yaml.safe_load(cli(stack, "deployment", "get", "--id", "cli-wine").stdout)
    assert as_yaml == as_json
    table = cli(stack, "deployment", "get", "-o", "table").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "STATE", "AVAILABLE"]
    assert any(line.split()[:3] == ["cli-wine", "Ready", "1/1"] for line in table)
    state = cli(stack, "deployment", "get", "--id", "cli-wine", "-o",
                "jsonpath=[*].status.state").stdout.strip()
    assert state == "Ready"

    info = json.loads(cli(stack, "model", "info", "--md", "cli-wine").stdout)
    assert info["openapi"].startswith("3.")
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"columns": SEED_COLUMNS, "data": [SEED_ROW]}))
    invoked = cli(stack, "model", "invoke", "--md", "cli-wine", "--file", str(request))
    prediction = json.loads(invoked.stdout)
    assert prediction["columns"] == ["quality"] and len(prediction["prediction"]) == 1
    request_id = invoked.stderr.split("request-id: ")[1].strip()
    fb = json.loads(cli(stack, "feedback", "send", "--model", "wine", "--version", "1.0",
                        "--request-id", request_id, "--json", '{"truthful": 1}').stdout)
    assert fb == {"requestID": request_id, "modelVersion": "1.0", "modelName": "wine",
                  "payload": {"json": {"truthful": 1}}}

    route_file = tmp_path / "route.yaml"
    route_file.write_text(yaml.safe_dump({"kind": "ModelRoute", "id": "cli-route", "spec": {
        "urlPrefix": "/custom/cli", "modelDeployments": [{"mdName": "cli-wine"}]}}))
    assert "Model route cli-route created" in cli(stack, "route", "create", "-f",
                                                  str(route_file)).stdout
    by_route = json.loads(cli(stack, "route", "get", "--id", "cli-route", "-o", "json").stdout)
    assert by_route[0]["status"]["edgeUrl"] == f"{stack.url}/custom/cli"
    routes = cli(stack, "route", "get", "-o", "table").stdout
    assert "cli-route" in routes and "/model/cli-wine" in routes
    assert "deleted" in cli(stack, "route", "delete", "--id", "cli-route").stdout

    edited = manifest("cli-wine", model="wine-v2", minReplicas=1, maxReplicas=2)
    path.write_text(yaml.safe_dump(edited))
    out = cli(stack, "deployment", "edit", "-f", str(path), "--wait", "--timeout", "240").stdout
    assert "model wine 2.0" in out
    assert stack.deployment("cli-wine")["status"]["modelVersion"] == "2.0"

    deleted = cli(stack, "deployment", "delete", "-f", str(path), "--wait").stdout
    assert "Model deployment cli-wine was deleted" in deleted and "is gone" in deleted
    with stack.client() as client:
        assert client.get(f"{DEPLOYMENTS}/cli-wine/default-route").status_code == 404
        assert client.post("/model/cli-wine/api/model/invoke", json={}).status_code == 404
    missing = cli(stack, "deployment", "get", "--id", "cli-wine", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'mlgate: entity "cli-wine" is not found (HTTP 404)'
    ignored = cli(stack, "deployment", "delete", "--id", "cli-wine", "--ignore-not-found")
    assert "not found" in ignored.stdout


def test_cli_wait_exits_non_zero_with_the_reason_on_failed(stack, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump({"kind": "ModelDeployment", "id": "cli-broken", "spec": {
        "image": "registry.example/wine:1", "predictor": "odahu-ml-server"}}))
    result = cli(stack, "deployment", "create", "-f", str(path), "--wait", check=False)
    assert result.returncode == 1
    assert "cli-broken failed: the local runtime cannot run container image" in result.stderr
    cli(stack, "deployment", "delete", "--id", "cli-broken", "--wait")


def test_cli_reports_validation_errors_and_bad_output_format(stack, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("kind: ModelDeployment\nid: Bad_Id\nspec: {predictor: odahu-ml-server}\n")
    result = cli(stack, "deployment", "create", "-f", str(path), check=False)
    assert result.returncode == 1
    assert "ID is not valid" in result.stderr and "empty image parameter" in result.stderr
    assert "(HTTP 400)" in result.stderr
    bad = cli(stack, "deployment", "get", "-o", "xml", check=False)
    assert bad.returncode == 2 and "invalid output format" in bad.stderr


# -- state survives a restart ---------------------------------------------------------------


def test_restart_with_the_same_data_dir_brings_everything_back(mlgate, demo_models, tmp_path):
    data = tmp_path / "data"
    first = mlgate([], data_dir=data)
    with first.client() as client:
        assert client.post(DEPLOYMENTS, json=manifest("kept", minReplicas=1)).status_code == 201
        first.wait_state("kept", "Ready")
        assert client.post(ROUTES, json={"id": "kept-route", "spec": {
            "urlPrefix": "/custom/kept", "modelDeployments": [{"mdName": "kept"}]}}
        ).status_code == 201
        default_id = client.get(f"{DEPLOYMENTS}/kept/default-route").json()["id"]
    assert first.stop() == 0

    second = mlgate([], data_dir=data)
    with second.client() as client:
        resp = client.post("/model/kept/api/model/invoke",
                           json={"columns": SEED_COLUMNS, "data": [SEED_ROW]})
        assert resp.status_code == 200 and resp.headers["model-version"] == "1.0"
        second.wait_state("kept", "Ready")
        assert client.get(f"{DEPLOYMENTS}/kept/default-route").json()["id"] == default_id
        assert client.get(f"{ROUTES}/kept-route").status_code == 200


def test_manifests_are_applied_through_the_store(mlgate, demo_models, tmp_path):
    data = tmp_path / "data"
    wine = EXAMPLES / "wine-v1.yaml"
    first = mlgate(["-f", str(wine)], data_dir=data)
    first.wait_state("wine-v1", "Ready")
    created_at = first.deployment("wine-v1")["createdAt"]
    assert first.stop() == 0
    edited = tmp_path / "wine-v1.yaml"
    doc = yaml.safe_load(wine.read_text())
    doc["spec"]["image"] = f"file://{EXAMPLES / 'models' / 'wine-v2'}"
    edited.write_text(yaml.safe_dump(doc))
    second = mlgate(["-f", str(edited)], data_dir=data)
    dep = second.wait_state("wine-v1", "Ready")
    assert dep["createdAt"] == created_at and dep["spec"]["image"].endswith("wine-v2")
    wait_until(lambda: second.deployment("wine-v1")["status"]["modelVersion"] == "2.0",
               what="the updated model")


REGISTER = """
import sys
from mlflow import MlflowClient
client = MlflowClient(tracking_uri=sys.argv[1], registry_uri=sys.argv[1])
client.create_registered_model("wine")
client.create_model_version("wine", source=sys.argv[2])
"""


def test_registry_model_uri_with_a_tracking_uri(mlgate, demo_models, tmp_path):
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    subprocess.run([sys.executable, "-c", REGISTER, tracking, str(demo_models / "wine-v2")],
                   check=True, timeout=300, capture_output=True, cwd=tmp_path)
    stack = mlgate([], env={"MLGATE_LOCAL_MLFLOW_TRACKING_URI": tracking})
    body = {"id": "registered", "spec": {"image": "models:/wine/1",
                                         "predictor": "odahu-ml-server"}}
    with stack.client() as client:
        assert client.post(DEPLOYMENTS, json=body).status_code == 201
        dep = stack.wait_state("registered", "Ready", "Failed")
        assert dep["status"]["state"] == "Ready", dep["status"]
        assert dep["status"]["modelVersion"] == "2.0"
        resp = client.post("/model/registered/api/model/invoke",
                           json={"columns": SEED_COLUMNS, "data": [SEED_ROW]})
    assert resp.status_code == 200 and resp.headers["model-version"] == "2.0"
