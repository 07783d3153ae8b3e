"""Automatic canary analysis against a running ``mlgate up`` with real MLflow models.

One stack serves the stable wine-v1, the better wine-v2 (the demo's gradient-boosted trees)
and three canaries that misbehave on purpose (``tests/e2e/canary_models.py``: noisy
predictions, a 50 ms pause, an exception on every call). Each scenario is its own route
with ``spec.analysis`` (judged every second, 20 samples per variant), all created at once
and fed at once with real wine rows and their true quality as feedback, so their waits
overlap: a step's window is whole minutes of prediction time, so every rollout waits for
the next minute to begin. The restart and the CLI run last, on the same stack.
"""

from __future__ import annotations

import csv
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLES, ROOT, wait_until
from tests.e2e.canary_models import save

# fixtures of other modules: a headless Chromium tab, the real odahuflowctl
from tests.e2e.test_catalog_browser import ARTIFACTS, browser, give_token, page  # noqa: F401
from tests.e2e.test_odahu_cli import odahuflowctl  # noqa: F401

pytestmark = pytest.mark.e2e
CONFIG = """\
storage:
  flush_interval: 0.2
quality:
  poll_interval: 0.5
"""
CANARIES = {"noisy": "wine-noisy", "slow": "wine-slow", "broken": "wine-broken"}
ROWS = list(csv.DictReader((EXAMPLES / "wine-quality.csv").open()))
DECIDED = 240  # seconds: the next minute, then a few seconds of traffic
ERROR_RATE = {"name": "error-rate", "max": 1}
QUALITY = {"name": "quality", "metric": "mae", "maxIncrease": 5}
LATENCY = {"name": "latency-p99", "maxIncrease": 20}


def analysis(canary: str, *metrics: dict, **fields) -> dict:
    return {"canary": canary, "interval": "1s", "stepWeights": [50], "threshold": 1,
            "minSamples": 20, "progressDeadline": "10m", "metrics": list(metrics), **fields}


ROUTES = {  # route id: (canary, spec.analysis)
    "better": ("wine-v2", analysis("wine-v2", ERROR_RATE, QUALITY)),
    "worse": ("wine-noisy", analysis("wine-noisy", ERROR_RATE, QUALITY)),
    "broken": ("wine-broken", analysis("wine-broken", ERROR_RATE, QUALITY)),
    "slow": ("wine-slow", analysis("wine-slow", ERROR_RATE, LATENCY)),
    "resumed": ("wine-v2", analysis("wine-v2", ERROR_RATE, QUALITY, stepWeights=[10, 50])),
}


def route_doc(route_id: str, canary: str, spec_analysis: dict | None) -> dict:
    spec = {"urlPrefix": f"/custom/{route_id}", "modelDeployments": [
        {"mdName": "wine-v1", "weight": 100}, {"mdName": canary, "weight": 0}]}
    if spec_analysis is not None:
        spec["analysis"] = spec_analysis
    return {"kind": "ModelRoute", "id": route_id, "spec": spec}


@pytest.fixture(scope="module")
def models(demo_models, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("canaries")
    return {kind: save(kind, demo_models / "wine-v1", out / name)
            for kind, name in CANARIES.items()}


@pytest.fixture(scope="module")
def stack(mlgate_module, demo_models, models, tmp_path_factory):
    work = tmp_path_factory.mktemp("rollouts")
    (work / "mlgate.yaml").write_text(CONFIG)
    files = [EXAMPLES / "wine-v1.yaml", EXAMPLES / "wine-v2.yaml"]
    for kind, name in CANARIES.items():
        manifest = work / f"{name}.yaml"
        manifest.write_text(yaml.safe_dump({"kind": "ModelDeployment", "id": name, "spec": {
            "image": f"file://{models[kind]}", "predictor": "odahu-ml-server",
            "minReplicas": 1, "maxReplicas": 1}}))
        files.append(manifest)
    proc = mlgate_module([arg for f in files for arg in ("-f", str(f))]
                         + ["--config", str(work / "mlgate.yaml")])
    for name in ("wine-v1", "wine-v2", *CANARIES.values()):
        proc.wait_state(name, "Ready", timeout=300)
    return proc


class Traffic(threading.Thread):
    """Real wine rows through a route, each answer's true quality sent as feedback; at most
    ``limit`` requests, about 30 a second, until stopped."""

    def __init__(self, stack, route_id: str, limit: int = 6000) -> None:
        super().__init__(name=f"traffic-{route_id}", daemon=True)
        self.stack, self.route_id, self.limit = stack, route_id, limit
        self.stop = threading.Event()
        self.targets: dict[str, int] = {}

    def run(self) -> None:
        rng = random.Random(self.route_id)
        with self.stack.client(timeout=30) as client:
            for _ in range(self.limit):
                if self.stop.wait(0.03):
                    return
                row = dict(rng.choice(ROWS))
                label = float(row.pop("quality"))
                resp = client.post(f"/custom/{self.route_id}/api/model/invoke", json={
                    "columns": list(row), "data": [[float(v) for v in row.values()]]})
                target = resp.headers.get("x-mlgate-target", "?")
                self.targets[target] = self.targets.get(target, 0) + 1
                if resp.status_code == 200:
                    client.post("/api/v1/feedback", json={"truthful": label}, headers={
                        "model-name": resp.headers["model-name"],
                        "model-version": resp.headers["model-version"],
                        "request-id": resp.headers["request-id"]})


@pytest.fixture(scope="module")
def traffic(stack):
    """Every scenario's route created at once, each with its own traffic."""
    feeds = {}
    with stack.client() as client:
        for route_id, (canary, spec_analysis) in ROUTES.items():
            created = client.post("/api/v1/model/route",
                                  json=route_doc(route_id, canary, spec_analysis))
            assert created.status_code == 201, created.text
            assert created.json()["status"]["rollout"]["phase"] == "Progressing"
    for route_id in ROUTES:
        feeds[route_id] = Traffic(stack, route_id)
        feeds[route_id].start()
    yield feeds
    for feed in feeds.values():
        feed.stop.set()
    for feed in feeds.values():
        feed.join(30)


def rollout(stack, route_id: str) -> dict:
    with stack.client() as client:
        resp = client.get(f"/api/v1/model/route/{route_id}/rollout")
    assert resp.status_code == 200, resp.text
    return resp.json()


def finished(stack, route_id: str, timeout: float = DECIDED) -> dict:
    return wait_until(lambda: (r := rollout(stack, route_id))["phase"] in (
        "Succeeded", "Failed") and r, timeout, interval=0.5,
        what=f"the rollout of {route_id} to finish")


def weights(stack, route_id: str) -> dict[str, int]:
    with stack.client() as client:
        route = client.get(f"/api/v1/model/route/{route_id}").json()
    return {t["mdName"]: t["weight"] for t in route["spec"]["modelDeployments"]}


def verdicts(doc: dict) -> dict[str, dict]:
    return {m["name"]: m for m in doc["lastJudgement"]["metrics"]}


def test_a_better_model_is_promoted(stack, traffic):
    done = finished(stack, "better")
    traffic["better"].stop.set()
    assert done["phase"] == "Succeeded", done["message"]
    assert done["canaryWeight"] == 100 and weights(stack, "better") == {"wine-v1": 0,
                                                                          "wine-v2": 100}
    quality = verdicts(done)["quality-mae"]
    assert quality["verdict"] == "pass" and quality["canary"] < quality["stable"]
    assert min(quality["samples"].values()) >= 20
    assert [h["phase"] for h in done["history"]][-1] == "Succeeded"
    assert done["history"][0]["canaryWeight"] == 50


def test_a_clearly_worse_model_is_rolled_back_on_its_mae(stack, traffic):
    done = finished(stack, "worse")
    traffic["worse"].stop.set()
    assert done["phase"] == "Failed" and done["canaryWeight"] == 0
    assert weights(stack, "worse") == {"wine-v1": 100, "wine-noisy": 0}
    quality = verdicts(done)["quality-mae"]
    assert quality["verdict"] == "fail" and quality["canary"] > quality["bound"]
    assert done["message"].startswith("rolled back to wine-v1 after 1 failed checks: "
                                      "quality-mae: canary ")
    assert f"stable {quality['stable']:.4g}" in done["message"] and "bound" in done["message"]


def test_a_canary_answering_500_is_rolled_back(stack, traffic):
    done = finished(stack, "broken")
    traffic["broken"].stop.set()
    assert done["phase"] == "Failed" and weights(stack, "broken")["wine-broken"] == 0
    errors = verdicts(done)["error-rate"]
    assert (errors["verdict"], errors["canary"], errors["stable"]) == ("fail", 100.0, 0.0)
    assert "error-rate: canary 100%, stable 0%, bound 1%: the canary is over the ceiling 1%" \
        in done["message"]


def test_a_slower_canary_is_rolled_back_on_latency(stack, traffic):
    done = finished(stack, "slow")
    traffic["slow"].stop.set()
    assert done["phase"] == "Failed" and weights(stack, "slow")["wine-slow"] == 0
    latency = verdicts(done)["latency-p99"]
    assert latency["verdict"] == "fail" and latency["canary"] > 0.05 > latency["stable"]
    assert "latency-p99: canary" in done["message"]


def test_after_a_rollback_the_gateway_sends_everything_to_stable(stack, traffic):
    finished(stack, "worse")
    with stack.client() as client:
        served = {client.post("/custom/worse/api/model/invoke", json={
            "columns": list(ROWS[0])[:-1], "data": [[float(v) for v in list(
                ROWS[0].values())[:-1]]]}).headers["x-mlgate-target"] for _ in range(30)}
    assert served == {"wine-v1"}


def test_without_traffic_the_rollout_is_inconclusive_then_fails_at_its_deadline(stack):
    """``mlgate route status --watch`` follows it (one line per change off a terminal) and
    exits 1 when it fails; the canary never got more than its first step."""
    doc = route_doc("idle", "wine-v2", analysis("wine-v2", ERROR_RATE, QUALITY,
                                                progressDeadline="15s"))
    with stack.client() as client:
        assert client.post("/api/v1/model/route", json=doc).status_code == 201
    watched = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "route", "status", "idle", "--watch",
         "--timeout", "60", "--url", stack.url, "--token", stack.token],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert watched.returncode == 1, watched.stderr
    lines = watched.stdout.splitlines()
    assert lines[0].startswith("idle: ") and "at step 1 of 1, canary wine-v2 50%" in lines[0]
    assert any(line.startswith("idle: Inconclusive at step 1 of 1") and "waits for samples"
               in line for line in lines), lines
    assert lines[-1].startswith("idle: Failed at step 1 of 1, canary wine-v2 0%, 0/1 failed "
                                "checks: no decision within progressDeadline 15s at step 1 "
                                "of 1; rolled back to wine-v1; last judgement inconclusive")
    done = rollout(stack, "idle")
    assert max(h["canaryWeight"] for h in done["history"]) == 50
    assert weights(stack, "idle") == {"wine-v1": 100, "wine-v2": 0}


def test_bad_analyses_are_refused_with_a_message_per_field(stack):
    bad = analysis("wine-v3", ERROR_RATE, {"name": "throughput"}, interval="500ms",
                   stepWeights=[50, 25])
    with stack.client() as client:
        resp = client.post("/api/v1/model/route", json=route_doc("bad", "wine-v2", bad))
        empty = client.post("/api/v1/model/route", json=route_doc(
            "bad", "wine-v2", analysis("wine-v2", ERROR_RATE, stepWeights=[])))
    assert resp.status_code == 400
    message = resp.json()["message"]
    assert message.startswith("Validation of model route is failed: ")
    for field in ("spec.analysis.canary: must be one of the route's targets (wine-v1, "
                  "wine-v2), got 'wine-v3'",
                  "spec.analysis.interval: must be at least 1s, got '500ms'",
                  "spec.analysis.stepWeights: must increase, got [50, 25]",
                  "spec.analysis.metrics[1].name: unknown metric 'throughput'"):
        assert field in message, message
    assert empty.status_code == 400
    assert "spec.analysis.stepWeights: must be a non-empty list" in empty.json()["message"]


def test_metrics_show_every_rollouts_weights_phase_and_judgements(stack, traffic):
    finished(stack, "better")
    finished(stack, "worse")
    with stack.client() as client:
        text = client.get("/metrics").text
    assert 'mlgate_rollout_weight{deployment="wine-v2",route="better"} 100.0' in text
    assert 'mlgate_rollout_weight{deployment="wine-v1",route="worse"} 100.0' in text
    assert 'mlgate_rollout_phase{phase="Succeeded",route="better"} 1.0' in text
    assert 'mlgate_rollout_phase{phase="Failed",route="worse"} 1.0' in text
    fails = [line for line in text.splitlines() if line.startswith(
        'mlgate_rollout_judgements_total{metric="quality-mae",route="worse",verdict="fail"}')]
    assert fails == [fails[0]] and float(fails[0].split()[-1]) == 1.0


def test_the_status_page_shows_each_rollout_with_its_weight_over_time(stack, traffic, page):  # noqa: F811
    finished(stack, "better")
    finished(stack, "worse")
    page.goto(f"{stack.url}/status/")
    give_token(page, stack.token)
    better, worse = '[data-rollout="better"]', '[data-rollout="worse"]'
    page.wait_for_selector(f"{better} canvas")
    page.wait_for_selector(f"{worse} canvas")
    assert page.inner_text(f"{better} .phase") == "Succeeded"
    assert page.inner_text(f"{worse} .phase") == "Failed"
    legend = page.inner_text(f"{better} .u-legend")
    assert "wine-v2 (canary)" in legend and "wine-v1 (stable)" in legend
    assert "weight % over time" in page.inner_text(f"{better} .u-title")
    assert page.inner_text(f'{worse} tr[data-metric="quality-mae"] .verdict') == "fail"
    assert page.inner_text(f'{better} tr[data-metric="quality-mae"] .verdict') == "pass"
    assert "rolled back to wine-v1" in page.inner_text(f"{worse} .message")
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#rollouts").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(ARTIFACTS / "status-rollout.png"))


def test_odahuflowctl_round_trips_spec_analysis(stack, traffic, odahuflowctl, tmp_path):  # noqa: F811
    """odahuflowctl drops spec fields it does not know: what it reads and writes back has no
    spec.analysis, and mlgate keeps the stored one (an explicit ``analysis: null`` removes it)."""
    finished(stack, "better")
    before = rollout(stack, "better")
    odahuflowctl("login", "--url", stack.url, "--token", stack.token)
    shown = yaml.safe_load(odahuflowctl("route", "get", "--id", "better", "-o", "yaml").stdout)
    assert "analysis" not in shown[0]["spec"]
    shown[0]["spec"]["modelDeployments"] = [{"mdName": "wine-v1", "weight": 100},
                                            {"mdName": "wine-v2", "weight": 0}]  # stale
    (tmp_path / "route.yaml").write_text(yaml.safe_dump(shown[0]))
    odahuflowctl("route", "edit", "-f", str(tmp_path / "route.yaml"))
    with stack.client() as client:
        route = client.get("/api/v1/model/route/better").json()
    assert route["spec"]["analysis"] == ROUTES["better"][1]
    assert route["status"]["rollout"]["phase"] == "Succeeded"  # the same rollout, not a new one
    assert rollout(stack, "better")["startedAt"] == before["startedAt"]
    assert weights(stack, "better") == {"wine-v1": 0, "wine-v2": 100}  # the rollout's, kept


def test_a_put_without_analysis_that_no_longer_fits_it_says_so(stack, traffic):
    body = route_doc("better", "wine-noisy", None)  # another canary, and no spec.analysis
    with stack.client() as client:
        refused = client.put("/api/v1/model/route", json=body)
        assert refused.status_code == 400
        assert "spec.analysis.canary: must be one of the route's targets (wine-v1, " \
               "wine-noisy), got 'wine-v2'" in refused.json()["message"]
        assert refused.json()["message"].endswith(
            'spec.analysis was kept from the stored route because the request has none: send '
            '"analysis": null to remove it')


def cli(stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.cli", *args, "--url", stack.url,
                           "--token", stack.token], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def test_a_restarted_mlgate_resumes_the_rollout_at_its_step(stack, traffic):
    def on_second_step():
        doc = rollout(stack, "resumed")
        return doc if doc["step"] == 2 else None

    before = wait_until(on_second_step, DECIDED, interval=0.5, what="step 2 of resumed")
    for feed in traffic.values():
        feed.stop.set()
    traffic["resumed"].join(30)
    assert before["canaryWeight"] == 50 and before["phase"] in ("Progressing", "Inconclusive")
    assert stack.stop() == 0
    stack.start()
    after = rollout(stack, "resumed")
    for key in ("step", "canaryWeight", "failedChecks", "startedAt", "stepStartedAt"):
        assert after[key] == before[key], key
    assert after["phase"] in ("Progressing", "Inconclusive")
    assert weights(stack, "resumed") == {"wine-v1": 50, "wine-v2": 50}
    wait_until(lambda: rollout(stack, "resumed")["lastJudgedAt"] != before["lastJudgedAt"],
               60, what="a judgement after the restart")
    assert rollout(stack, "resumed")["step"] == 2
    for name in ("wine-v1", "wine-v2"):  # a target gets traffic once it is Ready again
        stack.wait_state(name, "Ready")
    with stack.client() as client:
        served = [client.post("/custom/resumed/api/model/invoke", json={
            "columns": list(ROWS[0])[:-1], "data": [[float(v) for v in list(
                ROWS[0].values())[:-1]]]}).headers["x-mlgate-target"] for _ in range(60)]
    assert set(served) == {"wine-v1", "wine-v2"}  # 50/50 on the gateway after the restart


def test_promote_from_the_cli(stack):
    promoted = cli(stack, "route", "promote", "resumed")
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.startswith("resumed: Succeeded at step 2 of 2, canary wine-v2 100%")
    assert "promoted by hand at step 2 of 2" in promoted.stdout
    assert weights(stack, "resumed") == {"wine-v1": 0, "wine-v2": 100}
    again = cli(stack, "route", "promote", "resumed")
    assert again.returncode == 1
    assert "the rollout has already succeeded" in again.stderr and "(HTTP 409)" in again.stderr


def test_pause_resume_and_abort_from_the_cli(stack):
    with stack.client() as client:
        created = client.post("/api/v1/model/route", json=route_doc(
            "manual", "wine-v2", analysis("wine-v2", ERROR_RATE, stepWeights=[10, 50])))
        assert created.status_code == 201
    paused = cli(stack, "route", "pause", "manual")
    assert paused.returncode == 0 and "manual: Paused at step 1 of 2" in paused.stdout
    status = cli(stack, "route", "status", "manual")
    assert status.stdout.splitlines()[:2] == [
        "route manual: canary wine-v2 over stable wine-v1, Paused at step 1 of 2",
        "  weights    wine-v1 90%, wine-v2 10%"]
    resumed = cli(stack, "route", "resume", "manual")
    assert resumed.returncode == 0 and "resumed by hand at step 1 of 2" in resumed.stdout
    aborted = cli(stack, "route", "abort", "manual")
    assert aborted.returncode == 0
    assert aborted.stdout.startswith("manual: Failed at step 1 of 2, canary wine-v2 0%")
    assert weights(stack, "manual") == {"wine-v1": 100, "wine-v2": 0}
    with stack.client() as client:
        plain = client.get("/api/v1/model/deployment/wine-v1/default-route").json()["id"]
    missing = cli(stack, "route", "abort", plain)
    assert missing.returncode == 1
    assert f"model route {plain} has no spec.analysis: there is no rollout to abort " \
           "(HTTP 404)" in missing.stderr
    as_json = cli(stack, "route", "status", "manual", "-o", "json")
    assert yaml.safe_load(as_json.stdout)["phase"] == "Failed"
