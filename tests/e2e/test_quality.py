"""The live join against a running ``mlgate up``: every rule of the issue, through HTTP.

One stack serves wine-v1 (no ``spec.quality``: everything inferred) and wine-v2
(``spec.quality`` with a label path). Tests share it and look at what their own requests
changed (totals before and after), so their order does not matter, except the restart,
which runs last. Eviction, the split topology and gateway workers get their own stacks.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from tests.conftest import EXAMPLES, ROOT, SEED_COLUMNS, SEED_ROW, wait_until

pytestmark = pytest.mark.e2e
BODY = {"columns": SEED_COLUMNS, "data": [SEED_ROW]}
CONFIG = """\
storage:
  flush_interval: 0.2
quality:
  feedback_wait: 4
  max_waiting: 3
  poll_interval: 0.5
  rescan_interval: 1
"""
V2 = """\
kind: ModelDeployment
id: wine-v2
spec:
  image: file://{models}/wine-v2
  predictor: odahu-ml-server
  minReplicas: 1
  quality:
    task: regression
    label: $.truthful
    window: 15m
"""


def write_config(tmp_path_factory, text: str = CONFIG) -> str:
    path = tmp_path_factory.mktemp("quality") / "mlgate.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def stack(mlgate_module, demo_models, tmp_path_factory):
    config = write_config(tmp_path_factory)
    v2 = tmp_path_factory.mktemp("manifests") / "wine-v2.yaml"
    v2.write_text(V2.format(models=demo_models))
    proc = mlgate_module(["-f", str(EXAMPLES / "wine-v1.yaml"), "-f", str(v2),
                          "--config", config])
    proc.wait_state("wine-v1", "Ready")
    proc.wait_state("wine-v2", "Ready")
    return proc


def invoke(client, dep: str, rid: str, prefix: str = "/model") -> float:
    resp = client.post(f"{prefix}/{dep}/api/model/invoke", json=BODY,
                       headers={"Request-ID": rid})
    assert resp.status_code == 200, resp.text
    return resp.json()["prediction"][0]


def send_feedback(client, rid: str, payload, version: str = "1.0", model: str = "wine"):
    resp = client.post("/feedback/model/", content=orjson.dumps(payload), headers={
        "x-model-name": model, "x-model-version": version, "Request-ID": rid,
        "Content-Type": "application/json"})
    assert resp.status_code == 200 and resp.json()["registered"] is True, resp.text


def quality(client, dep: str, **params) -> dict:
    resp = client.get(f"/api/v1/model/deployment/{dep}/quality", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def totals(client, dep: str) -> dict:
    return quality(client, dep, since="24h")["totals"]


def abs_error_sum(t: dict) -> float:
    return (t.get("mae") or 0.0) * t.get("count", 0)


def metric(stack, name: str, **labels) -> float:
    with stack.client() as client:
        text = client.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        series, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


def when(get, check):
    """A ``wait_until`` check: ``get()`` once ``check`` holds for it, else None."""
    def probe():
        value = get()
        return value if check(value) else None
    return probe


def settle(client, dep: str, check, what: str, timeout: float = 30) -> dict:
    """The totals once ``check(totals)`` holds (records reach the join within a second)."""
    return wait_until(when(lambda: totals(client, dep), check), timeout, what=what)


def test_an_invoke_and_its_feedback_show_up_as_the_deployments_mae(stack):
    with stack.client() as client:
        before = totals(client, "wine-v1")
        predicted = invoke(client, "wine-v1", "basic-1")
        send_feedback(client, "basic-1", {"truthful": 6})
        after = settle(client, "wine-v1", lambda t: t.get("count", 0) == before.get("count", 0) + 1,
                       "the label to join")
        doc = quality(client, "wine-v1", since="10m", window="1m")
    assert after["requests"] == before["requests"] + 1
    assert after["labelled"] == before["labelled"] + 1
    assert math.isclose(abs_error_sum(after) - abs_error_sum(before), abs(predicted - 6),
                        abs_tol=1e-4)
    assert doc["quality"] == {"state": "inferred", "task": "regression",
                              "prediction": "$.prediction", "label": "$.truthful",
                              "window": "1h",
                              "defaults": ["task", "prediction", "label", "window"]}
    assert doc["window"] == "1m" and len(doc["series"]) in (10, 11) and doc["complete"]
    assert sum(b["labelled"] for b in doc["series"]) == doc["totals"]["labelled"]
    assert metric(stack, "mlgate_feedback_joined_total", deployment="wine-v1") >= 1
    assert metric(stack, "mlgate_model_quality", deployment="wine-v1", metric="mae") > 0


def test_a_late_label_is_credited_to_the_bucket_of_its_prediction(stack):
    """A prediction three hours old, in the bucket as another process wrote it, gets its
    label now: the label counts in the hour of the prediction, not in this one."""
    old = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    record = {"request_id": "late-1", "model_name": "wine", "model_version": "1.0",
              "response_content": '{"prediction":[5.0],"columns":["quality"]}',
              "time": old.strftime("%Y-%m-%d %H:%M:%S +0000"), "response_status": "200",
              "deployment_id": "wine-v1", "upstream_ms": 3.0}
    key = (f"response_body/wine/1.0/year={old:%Y}/month={old:%m}/day={old:%d}/"
           f"{old:%Y%m%d%H}_999999999999000001.json")
    path = stack.data_dir / "storage" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(record) + b"\n")
    with stack.client() as client:
        wait_until(lambda: totals(client, "wine-v1")["requests"] and any(
            b["requests"] for b in quality(client, "wine-v1", since="4h", until="2h",
                                           window="1h")["series"]), 30,
                   what="the old prediction to be read from the bucket")
        send_feedback(client, "late-1", {"truthful": 7})

        def old_bucket():
            doc = quality(client, "wine-v1", since="4h", window="1h")
            hour = old.strftime("%Y-%m-%dT%H:00:00Z")
            [bucket] = [b for b in doc["series"] if b["start"] == hour]
            return bucket if bucket["labelled"] else None

        bucket = wait_until(old_bucket, 30, what="the label in the prediction's hour")
        current = quality(client, "wine-v1", since="4h", window="1h")["series"][-1]
    assert (bucket["labelled"], bucket["mae"], bucket["bias"]) == (1, 2.0, -2.0)
    assert 3 * 3600 - 5 <= bucket["median_label_delay_seconds"] <= 3 * 3600 + 120
    assert current["labelled"] == current["predictions"] - current["unlabelled"] - sum(
        current["invalid"].values())


def test_feedback_before_its_prediction_waits_and_joins_when_it_comes(stack):
    with stack.client() as client:
        before = totals(client, "wine-v1")
        send_feedback(client, "early-1", {"truthful": 5})
        wait_until(lambda: metric(stack, "mlgate_feedback_waiting") >= 1, 10,
                   what="the feedback to wait")
        invoke(client, "wine-v1", "early-1")
        after = settle(client, "wine-v1", lambda t: t["labelled"] == before["labelled"] + 1,
                       "the waiting feedback to join")
    assert after["requests"] == before["requests"] + 1


def test_waiting_feedback_is_bounded_in_count_and_age_and_expires_as_unmatched(stack):
    unmatched = metric(stack, "mlgate_feedback_unmatched_total")
    with stack.client() as client:
        for i in range(5):
            send_feedback(client, f"orphan-{i}", {"truthful": 5})
    # max_waiting is 3: the two oldest expire at once
    wait_until(lambda: metric(stack, "mlgate_feedback_unmatched_total") >= unmatched + 2, 10,
               what="the count bound")
    assert metric(stack, "mlgate_feedback_waiting") <= 3
    # the rest after feedback_wait (4 s) and the grace for records on their way (about 7 s)
    wait_until(lambda: metric(stack, "mlgate_feedback_unmatched_total") >= unmatched + 5, 30,
               what="the age bound")
    assert metric(stack, "mlgate_feedback_waiting") == 0


def test_a_second_feedback_replaces_the_first_and_never_counts_twice(stack):
    corrections = metric(stack, "mlgate_feedback_corrections_total", deployment="wine-v1")
    with stack.client() as client:
        before = totals(client, "wine-v1")
        predicted = invoke(client, "wine-v1", "corr-1")
        send_feedback(client, "corr-1", {"truthful": 9})
        first = settle(client, "wine-v1", lambda t: t.get("count", 0) == before.get("count", 0) + 1,
                       "the first label")
        send_feedback(client, "corr-1", {"truthful": 6})
        second = settle(client, "wine-v1", lambda t: not math.isclose(
            abs_error_sum(t), abs_error_sum(first), abs_tol=1e-6), "the correction")
    assert second.get("count", 0) == first.get("count", 0) == before.get("count", 0) + 1
    assert math.isclose(abs_error_sum(first) - abs_error_sum(before), abs(predicted - 9),
                        abs_tol=1e-4)
    assert math.isclose(abs_error_sum(second) - abs_error_sum(before), abs(predicted - 6),
                        abs_tol=1e-4)
    assert metric(stack, "mlgate_feedback_corrections_total",
                  deployment="wine-v1") == corrections + 1


@pytest.mark.parametrize(("dep", "version", "payload", "reason"), [
    ("wine-v2", "2.0", {"truthful": "six"}, "not_a_number"),
    ("wine-v2", "2.0", {"score": 5}, "missing"),
    ("wine-v1", "1.0", {"a": 1, "b": 2}, "ambiguous"),
    ("wine-v1", "1.0", [1, 2], "row_count"),
])
def test_an_invalid_label_is_counted_with_its_reason_and_the_request_succeeds(
        stack, dep, version, payload, reason):
    rid = f"invalid-{dep}-{reason}-{json.dumps(payload).__hash__() & 0xffff}"
    counted = metric(stack, "mlgate_feedback_invalid_total", deployment=dep, reason=reason)
    with stack.client() as client:
        before = totals(client, dep)
        invoke(client, dep, rid)
        send_feedback(client, rid, payload, version)  # answered 200, registered
        after = settle(client, dep, lambda t: t["invalid"].get(reason, 0) ==
                       before["invalid"].get(reason, 0) + 1, "the invalid label")
    assert after["labelled"] == before["labelled"]
    assert after["unlabelled"] == before["unlabelled"]
    assert metric(stack, "mlgate_feedback_invalid_total", deployment=dep,
                  reason=reason) == counted + 1


def test_the_status_says_how_quality_is_measured_and_the_spec_round_trips(stack):
    with stack.client() as client:
        v1 = client.get("/api/v1/model/deployment/wine-v1").json()
        v2 = client.get("/api/v1/model/deployment/wine-v2").json()
        listed = {d["id"]: d for d in client.get("/api/v1/model/deployment").json()}
    assert "quality" not in v1["spec"]
    assert v1["status"]["quality"]["state"] == "inferred"
    assert v2["spec"]["quality"] == {"task": "regression", "label": "$.truthful",
                                     "window": "15m"}
    assert v2["status"]["quality"] == {
        "state": "configured", "task": "regression", "prediction": "$.prediction",
        "label": "$.truthful", "window": "15m", "defaults": ["prediction"]}
    assert listed["wine-v2"]["status"]["quality"] == v2["status"]["quality"]


def test_a_bad_quality_query_or_spec_is_a_400_naming_each_field(stack):
    with stack.client() as client:
        bad = client.get("/api/v1/model/deployment/wine-v1/quality",
                         params={"window": "90s", "since": "yesterday-ish", "x": "1"})
        spec = client.post("/api/v1/model/deployment", json={"id": "bad-quality", "spec": {
            "image": "file:///nowhere", "predictor": "odahu-ml-server",
            "quality": {"task": "ranking", "label": "truthful", "window": "0"}}})
        missing = client.get("/api/v1/model/deployment/nope/quality")
    assert bad.status_code == 400
    message = bad.json()["message"]
    assert "window must be a whole number of minutes" in message and "since must be" in message
    assert "unknown parameter(s): x" in message
    assert spec.status_code == 400
    message = spec.json()["message"]
    assert "quality.task must be one of regression, classification, got 'ranking'" in message
    assert "quality.label must be a JSONPath expression starting with $" in message
    assert "quality.window" in message
    assert missing.status_code == 404


def test_route_quality_is_broken_down_per_target(stack):
    with stack.client() as client:
        created = client.post("/api/v1/model/route", json={"id": "quality-ab", "spec": {
            "urlPrefix": "/custom/quality-ab", "modelDeployments": [
                {"mdName": "wine-v1", "weight": 50}, {"mdName": "wine-v2", "weight": 50}]}})
        assert created.status_code == 201, created.text
        wait_until(lambda: client.get("/api/v1/model/route/quality-ab").json()["status"][
            "state"] == "Ready", 30, what="the route")
        served = {}
        for i in range(12):
            resp = client.post("/custom/quality-ab/api/model/invoke", json=BODY,
                               headers={"Request-ID": f"ab-{i}"})
            assert resp.status_code == 200
            served[f"ab-{i}"] = resp.headers["x-mlgate-target"]
        for rid, dep in served.items():
            send_feedback(client, rid, {"truthful": 6}, "1.0" if dep == "wine-v1" else "2.0")
        doc = wait_until(when(
            lambda: client.get("/api/v1/model/route/quality-ab/quality").json(),
            lambda d: sum(t["totals"]["labelled"] for t in d["targets"]) == 12), 30,
            what="the route's labels")
    by_dep = {t["deployment_id"]: t["totals"] for t in doc["targets"]}
    assert sorted(by_dep) == ["wine-v1", "wine-v2"]
    for dep in by_dep:
        assert by_dep[dep]["requests"] == sum(1 for d in served.values() if d == dep)
    assert doc["window"] == "1h"  # the first target's window


def test_mlgate_quality_prints_a_table_and_json(stack):
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "deploy.cli", "quality", *args,
                               "--url", stack.url, "--token", stack.token], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    table = cli("wine-v1", "--since", "1h", "--window", "15m")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith("deployment wine-v1 (model wine 1.0): quality inferred")
    header = next(line for line in lines if line.startswith("FROM"))
    assert header.split()[:6] == ["FROM", "REQUESTS", "5XX", "LABELLED", "UNLABELLED",
                                  "INVALID"] and "MAE" in header
    assert any(line.startswith("TOTAL") for line in lines)
    as_json = json.loads(cli("wine-v2", "-o", "json").stdout)
    assert as_json["quality"]["state"] == "configured" and as_json["window"] == "15m"
    route = cli("quality-ab", "--route")
    assert route.returncode == 0 and "route quality-ab: 2 target(s)" in route.stdout
    unknown = cli("nope")
    assert unknown.returncode == 1 and 'entity "nope" is not found' in unknown.stderr


def test_restart_rebuilds_the_same_figures_from_storage(stack):
    """Last in the module: the stack is stopped (everything uploaded) and started again."""
    now = datetime.now(UTC)  # absolute bounds: "6h" would move with the restart's minutes
    params = {"since": (now - timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M"),
              "until": (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"), "window": "1m"}
    with stack.client() as client:
        time.sleep(1.5)  # the last records through the join
        before = {dep: quality(client, dep, **params) for dep in ("wine-v1", "wine-v2")}
    assert stack.stop() == 0
    stack.start()
    stack.wait_state("wine-v1", "Ready")
    with stack.client() as client:
        wait_until(lambda: quality(client, "wine-v1", **params)["complete"], 60,
                   what="the figures to be rebuilt")
        after = {dep: quality(client, dep, **params) for dep in ("wine-v1", "wine-v2")}
    for dep in before:
        assert after[dep]["totals"] == before[dep]["totals"], dep
        assert after[dep]["series"] == before[dep]["series"], dep
        assert after[dep]["quality"] == before[dep]["quality"], dep
    assert before["wine-v1"]["totals"]["labelled"] >= 4
