"""Every call of the Python SDK against a real ``mlgate up`` with the demo MLflow models."""

from __future__ import annotations

import asyncio

import mlflow.pyfunc
import numpy as np
import orjson
import pandas as pd
import pytest

import mlgate
from tests.conftest import EXAMPLES, wait_until

pytestmark = pytest.mark.e2e
WINE = pd.read_csv(EXAMPLES / "wine-quality.csv")
FEATURES = WINE.drop(columns=["quality"])


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("jobs")


@pytest.fixture(scope="module")
def stack(mlgate_module, demo_models, job_dir):
    return mlgate_module([], env={"MLGATE_BATCH_LOCAL_ROOTS": str(job_dir)})


@pytest.fixture(scope="module")
def mg(stack):
    with mlgate.Client(stack.url, stack.token, progress=False) as client:
        client.deploy(EXAMPLES / "models" / "wine-v1", id="sdk-v1", wait=True, timeout=240)
        client.deploy(str(EXAMPLES / "models" / "wine-v2"), id="sdk-v2", wait=True,
                      timeout=240)
        yield client


def test_deploy_waits_until_ready_and_is_idempotent(mg, stack, capsys):
    dep = mg.deployments.get("sdk-v1")
    assert dep.ready and dep.model_name == "wine" and dep.model_version == "1.0"
    assert dep.image == f"file://{(EXAMPLES / 'models' / 'wine-v1').resolve()}"
    again = mg.deploy(EXAMPLES / "models" / "wine-v1", id="sdk-v1", wait=False)
    assert again.state == "Ready"  # the same spec again changes nothing
    listed = mg.deployments.list()
    assert {"sdk-v1", "sdk-v2"} <= {d.id for d in listed}
    assert "sdk-v1" in str(listed) and "<td>sdk-v1</td>" in listed._repr_html_()
    assert str(dep).splitlines()[0].split()[:3] == ["ID", "STATE", "AVAILABLE"]


def test_invoke_a_dataframe_gives_the_models_predictions_on_its_index(mg):
    rows = FEATURES.iloc[100:120]
    pred = mg.invoke("sdk-v1", rows)
    expected = mlflow.pyfunc.load_model(str(EXAMPLES / "models" / "wine-v1")).predict(rows)
    assert pred.index.equals(rows.index)
    np.testing.assert_allclose(pred["quality"].to_numpy(), np.asarray(expected).ravel())
    assert pred["request_id"].nunique() == 1
    assert pred.attrs["model_name"] == "wine" and pred.attrs["model_version"] == "1.0"
    assert pred.attrs["deployment"] == "sdk-v1"


def test_invoke_in_batches_gives_one_request_id_per_call(mg):
    pred = mg.invoke("sdk-v1", FEATURES.iloc[:20], batch_size=8)
    assert len(pred) == 20 and pred["request_id"].nunique() == 3
    assert pred.attrs["request_ids"] == list(dict.fromkeys(pred["request_id"]))


def test_invoke_json_and_own_request_id(mg):
    body = {"columns": list(FEATURES.columns), "data": [FEATURES.iloc[0].tolist()]}
    answer = mg.invoke("sdk-v2", body, request_id="sdk-own-id-1")
    assert answer["columns"] == ["quality"] and len(answer["prediction"]) == 1
    raw = mg.invoke_raw("sdk-v2", orjson.dumps(body), headers={"Request-ID": "sdk-raw-1"})
    assert raw.status_code == 200 and raw.headers["request-id"] == "sdk-raw-1"
    assert raw.headers["model-version"] == "2.0" and raw.json()["columns"] == ["quality"]


def test_a_bad_input_is_an_invalid_error_with_the_models_message(mg):
    with pytest.raises(mlgate.Invalid) as err:
        mg.invoke("sdk-v1", pd.DataFrame({"not a feature": [1.0]}))
    assert err.value.status == 400 and err.value.message


def test_feedback_and_records_close_the_loop(mg):
    rows = FEATURES.iloc[200:210]
    pred = mg.invoke("sdk-v1", rows, batch_size=5)
    answers = mg.feedback(pred, WINE["quality"].iloc[200:210])
    assert [a["requestID"] for a in answers] == pred.attrs["request_ids"]
    assert answers[0]["payload"]["json"]["truthful"] == WINE["quality"].iloc[200:205].tolist()
    assert answers[0]["modelName"] == "wine" and answers[0]["modelVersion"] == "1.0"
    one = mg.feedback(pred.attrs["request_ids"][0], {"truthful": 6})  # from the client's memory
    assert one[0]["payload"] == {"json": {"truthful": 6}}

    ids = set(pred.attrs["request_ids"])

    def stored(kind):
        frame = mg.records("wine", kind=kind, version="1.0", since="2020-01-01")
        return [frame] if not frame.empty and ids <= set(frame["request_id"]) else None

    [feedback] = wait_until(lambda: stored("feedback"), 30, what="feedback records")
    assert str(feedback["time"].dtype).startswith("datetime64")
    [logged] = wait_until(lambda: stored("request_response"), 30, what="request records")
    mine = logged[logged["request_id"].isin(ids)]
    assert set(mine["deployment_id"]) == {"sdk-v1"}
    assert len(mg.records("wine", kind="feedback", limit=1)) == 1


def test_records_refuse_bad_parameters(mg):
    with pytest.raises(mlgate.Invalid, match="since: not a date"):
        mg.records("wine", since="yesterday")
    with pytest.raises(mlgate.Invalid, match="kind must be one of"):
        mg.records("wine", kind="logs")


def test_routes_split_traffic_and_change_weights(mg):
    route = mg.routes.create("sdk-ab", "/custom/sdk-ab", {"sdk-v1": 50, "sdk-v2": 50})
    assert route.targets == {"sdk-v1": 50, "sdk-v2": 50} and not route.default
    served = set()
    for _ in range(30):
        pred = mg.invoke("sdk-ab", FEATURES.iloc[:1], route=True)
        served.add(pred.attrs["deployment"])
    assert served == {"sdk-v1", "sdk-v2"}
    moved = mg.routes.set_weights("sdk-ab", {"sdk-v1": 100, "sdk-v2": 0})
    assert moved.targets == {"sdk-v1": 100, "sdk-v2": 0}
    assert {mg.invoke("sdk-ab", FEATURES.iloc[:1], route=True).attrs["deployment"]
            for _ in range(5)} == {"sdk-v1"}
    assert "sdk-ab" in str(mg.routes.list())
    updated = mg.routes.update("sdk-ab", "/custom/sdk-ab", {"sdk-v1": 90, "sdk-v2": 10},
                               mirror="sdk-v2")
    assert updated.targets == {"sdk-v1": 90, "sdk-v2": 10} and updated.spec["mirror"] == "sdk-v2"
    assert mg.deployments.default_route("sdk-v1").url_prefix == "/model/sdk-v1"
    assert mg.info("sdk-ab", route=True)["openapi"].startswith("3.")
    assert "deleted" in mg.routes.delete("sdk-ab")
    with pytest.raises(mlgate.NotFound):
        mg.routes.get("sdk-ab")


def test_errors_name_what_went_wrong(mg, stack):
    with pytest.raises(mlgate.NotFound, match='entity "nope" is not found'):
        mg.deployments.get("nope")
    with pytest.raises(mlgate.Invalid, match="ID is not valid"):
        mg.deploy(EXAMPLES / "models" / "wine-v1", id="Bad_Id", wait=False)
    with pytest.raises(mlgate.Conflict):
        mg.deployments.create({"kind": "ModelDeployment", "id": "sdk-v1", "spec": {
            "image": "file:///m", "predictor": "odahu-ml-server"}})
    with mlgate.Client(stack.url, "not-a-token", progress=False) as anonymous:
        with pytest.raises(mlgate.Unauthorized):
            anonymous.deployments.list()
    viewer = stack.mint_token(["viewer"])
    with mlgate.Client(stack.url, viewer, progress=False) as looker:
        assert looker.deployments.get("sdk-v1").ready
        with pytest.raises(mlgate.Forbidden):
            looker.invoke("sdk-v1", FEATURES.iloc[:1])
        with pytest.raises(mlgate.Forbidden):
            looker.records("wine")
    with mlgate.Client("http://127.0.0.1:9", "x", progress=False, retries=0) as nowhere:
        with pytest.raises(mlgate.ConnectionFailed):
            nowhere.deployments.list()


def test_update_a_deployment_and_wait_for_it(mg):
    dep = mg.deployments.get("sdk-v2").to_dict()
    manifest = {"kind": "ModelDeployment", "id": dep["id"],
                "spec": {**dep["spec"], "maxReplicas": 2}}
    updated = mg.deployments.update(manifest, wait=True, timeout=240)
    assert updated.ready and updated.spec["maxReplicas"] == 2


def test_a_deployment_that_fails_raises_with_the_reason_and_is_deleted(mg):
    with pytest.raises(mlgate.DeploymentFailed,
                       match="the local runtime cannot run container image"):
        mg.deploy("registry.example/wine:1", id="sdk-broken", wait=True, timeout=60)
    assert "was deleted" in mg.deployments.delete("sdk-broken", wait=True)
    with pytest.raises(mlgate.NotFound):
        mg.deployments.get("sdk-broken")


def test_progress_lines_are_shown_while_waiting(stack):
    shown = []
    with mlgate.Client(stack.url, stack.token, progress=lambda: shown.append) as client:
        client.deployments.wait("sdk-v1")
    assert shown[-1].done and shown[-1].text.startswith("sdk-v1: Ready (1/1")


def test_the_async_client_does_the_same(stack, mg):
    async def main():
        async with mlgate.AsyncClient(stack.url, stack.token, progress=False) as amg:
            dep = await amg.deployments.get("sdk-v2")
            pred = await amg.invoke("sdk-v2", FEATURES.iloc[:3])
            answers = await amg.feedback(pred, [6, 5, 7])
            with pytest.raises(mlgate.NotFound):
                await amg.deployments.get("nope")
            both = await asyncio.gather(amg.invoke("sdk-v1", FEATURES.iloc[:2]),
                                        amg.invoke("sdk-v2", FEATURES.iloc[:2]))
            return dep, pred, answers, both

    dep, pred, answers, both = asyncio.run(main())
    assert dep.model_version == "2.0" and pred.attrs["model_version"] == "2.0"
    assert answers[0]["payload"] == {"json": {"truthful": [6, 5, 7]}}
    assert [b.attrs["deployment"] for b in both] == ["sdk-v1", "sdk-v2"]


def test_a_job_runs_to_its_end_with_progress(mg, stack, job_dir):
    WINE.iloc[:300].to_csv(job_dir / "wine.csv", index=False)
    shown = []
    with mlgate.Client(stack.url, stack.token, progress=lambda: shown.append) as client:
        job = client.jobs.create({"kind": "InferenceJob", "id": "sdk-job", "spec": {
            "deployment": "sdk-v1", "input": str(job_dir / "wine.csv"),
            "output": str(job_dir / "out") + "/", "format": "csv", "dropColumns": ["quality"],
            "batchSize": 100}}, wait=True, timeout=240)
    assert job.ended and job.state == "Succeeded" and job.rows_done == 300
    assert job.summary().startswith("Inference job sdk-job Succeeded: 300 rows predicted")
    assert shown[-1].done and shown[-1].completed == shown[-1].total == 300
    out = pd.read_csv(job_dir / "out" / "wine.csv")
    assert len(out) == 300 and out["request_id"].str.startswith("sdk-job-").all()
    assert "sdk-job" in str(mg.jobs.list()) and mg.jobs.get("sdk-job").rows_total == 300
    again = mg.jobs.resume("sdk-job", wait=True, timeout=240)
    assert again.state == "Succeeded"
    assert "sdk-job" in mg.jobs.delete("sdk-job")
    with pytest.raises(mlgate.NotFound):
        mg.jobs.get("sdk-job")
    with pytest.raises(mlgate.Invalid, match="format"):
        mg.jobs.create({"kind": "InferenceJob", "id": "sdk-bad", "spec": {
            "deployment": "sdk-v1", "input": str(job_dir / "wine.csv"),
            "output": str(job_dir / "out2") + "/", "format": "xls"}})


def test_quality_and_the_data_set_of_labelled_predictions(mg):
    rows = FEATURES.iloc[300:320]
    pred = mg.invoke("sdk-v2", rows)
    truth = WINE["quality"].iloc[300:320]
    mg.feedback(pred, truth)

    def labelled():  # "count": labelled rows; "labelled": labelled predictions (calls)
        found = mg.quality("sdk-v2", since="1d")
        return found if found.totals.get("count", 0) >= 20 else None

    found = wait_until(labelled, 60, what="sdk-v2's labels to join")
    assert found.state == "inferred" and not found.route
    series = found.frame()
    assert {"start", "deployment", "mae", "labelled", "count"} <= set(series.columns)
    assert series["count"].sum() == found.totals["count"]
    assert "MAE" in str(found) and "<pre>" in found._repr_html_()

    def exported():
        frame = mg.dataset("wine", deployment="sdk-v2", labelled_only=True)
        return [frame] if len(frame) >= found.totals["count"] else None

    [data] = wait_until(exported, 60, what="sdk-v2's labelled rows in the data set")
    mine = data[data["request_id"] == pred["request_id"].iloc[0]].sort_values("row")
    assert mine["label"].tolist() == truth.tolist()
    np.testing.assert_allclose(mine["prediction"].to_numpy(), pred["quality"].to_numpy())
    assert mine["alcohol"].tolist() == rows["alcohol"].tolist()
    assert len(data) == found.totals["count"]  # the same joined rows, live and exported
    assert (data["prediction"] - data["label"]).abs().mean() == pytest.approx(
        found.totals["mae"], abs=1e-6)
    as_lines = mg.dataset("wine", deployment="sdk-v2", labelled_only=True, format="jsonl")
    assert len(as_lines) == len(data)


def test_route_quality_has_one_part_per_target(mg):
    mg.routes.create("sdk-q", "/custom/sdk-q", {"sdk-v1": 50, "sdk-v2": 50})
    try:
        found = mg.quality("sdk-q", route=True, since="1h")
        assert found.route and set(found.totals) >= {"sdk-v1", "sdk-v2"}
        assert set(found.frame()["deployment"]) <= {"sdk-v1", "sdk-v2"}
    finally:
        mg.routes.delete("sdk-q")
