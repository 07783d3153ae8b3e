"""Monitoring against real parts: Prometheus (Debian's) scrapes ``mlgate up`` under traffic,
every panel query of the Grafana dashboard answers for the deployment, the alert rules
load and pass ``promtool``, and the access log writes one JSON line per request.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import EXAMPLES, ROOT, SEED_COLUMNS, SEED_ROW, wait_until

pytestmark = pytest.mark.e2e
DASHBOARD = ROOT / "ops" / "grafana" / "model-deployments.json"
PROMETHEUS_DIR = ROOT / "ops" / "prometheus"
DEPLOYMENT = "wine-v1"
ROUTE = "monitored"  # a route with a canary rollout (spec.analysis), for the rollout panels
RATE_INTERVAL = "10s"  # Grafana's $__rate_interval for a 1s scrape is 4s; 10s is safe
GOOD = {"columns": SEED_COLUMNS, "data": [SEED_ROW]}
BAD = {"columns": ["alcohol"], "data": [[1.0]]}  # the model answers 400: missing columns


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: `make test-tools` installs it (Debian package prometheus)"
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def stack(mlgate_module, demo_models, tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "mlgate.yaml"
    config.write_text("logging:\n  format: json\n")
    proc = mlgate_module(["-f", str(EXAMPLES / "wine-v1.yaml"), "-f",
                          str(EXAMPLES / "wine-v2.yaml"), "--config", str(config)])
    proc.wait_state(DEPLOYMENT, "Ready")
    with proc.client() as client:
        created = client.post("/api/v1/model/route", json={"id": ROUTE, "spec": {
            "urlPrefix": f"/custom/{ROUTE}", "modelDeployments": [
                {"mdName": DEPLOYMENT, "weight": 100}, {"mdName": "wine-v2", "weight": 0}],
            "analysis": {"canary": "wine-v2", "interval": "1s", "stepWeights": [20, 50],
                         "metrics": [{"name": "error-rate", "max": 1}]}}})
        assert created.status_code == 201, created.text
    return proc


@pytest.fixture(scope="module")
def traffic(stack):
    """Requests in the background while the module runs: good ones, 400s and 404s.

    Bounded: at most 20 requests a second, stopped at the end of the module (or after
    5 minutes, whichever comes first)."""
    stop = threading.Event()
    sent = {"count": 0}

    def run() -> None:
        with stack.client(timeout=30) as client:
            for i in range(20 * 300):
                if stop.wait(0.05):
                    return
                if i % 10 == 9:
                    client.post(f"/model/{DEPLOYMENT}/api/model/invoke", json=BAD)
                elif i % 10 == 8:
                    client.get(f"/model/{DEPLOYMENT}/no-such-path")
                else:
                    rid = f"traffic-{i}"
                    client.post(f"/model/{DEPLOYMENT}/api/model/invoke", json=GOOD,
                                headers={"Request-ID": rid})
                    if i % 10 < 6:  # ground truth for most, a label that is no number for one
                        label = "?" if i % 10 == 5 else 5 + i % 3
                        client.post("/api/v1/feedback", json={"truthful": label}, headers={
                            "model-name": "wine", "model-version": "1.0", "request-id": rid})
                sent["count"] += 1

    thread = threading.Thread(target=run, name="traffic", daemon=True)
    thread.start()
    yield sent
    stop.set()
    thread.join(30)


@pytest.fixture(scope="module")
def prometheus(stack, tmp_path_factory):
    """A real Prometheus scraping the stack every second, with the project's alert rules."""
    binary = tool("prometheus")
    work = tmp_path_factory.mktemp("prometheus")
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", work / "alerts.yml")
    target = urlparse(stack.url).netloc
    config = work / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "rule_files:\n  - alerts.yml\n"
        "scrape_configs:\n  - job_name: mlgate\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: [\"{target}\"]\n")
    port = free_port()
    log = open(work / "prometheus.log", "w")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={work / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT, cwd=work)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert proc.poll() is None, (work / "prometheus.log").read_text()
            try:
                return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, 60, what="Prometheus to be ready")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def query(prometheus: str, expr: str) -> list[dict]:
    resp = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
    body = resp.json()
    assert resp.status_code == 200 and body["status"] == "success", (expr, body)
    return body["data"]["result"]


def panel_queries() -> list[tuple[str, str, str]]:
    """(panel title, legend, PromQL with the dashboard variables filled in)."""
    doc = json.loads(DASHBOARD.read_text())
    out = []
    for panel in doc["panels"]:
        for target in panel.get("targets", []):  # rows have none
            expr = target["expr"].replace("$deployment", DEPLOYMENT).replace(
                "$__rate_interval", RATE_INTERVAL).replace("$route", ROUTE)
            assert "$" not in expr, expr
            out.append((panel["title"], target["legendFormat"], expr))
    return out


def test_the_dashboard_has_the_seed_panels_and_a_deployment_variable():
    doc = json.loads(DASHBOARD.read_text())
    titles = {p["title"] for p in doc["panels"]}
    assert {"Availability", "Replicas", "CPU", "Memory", "Failed HTTP requests",
            "Failed HTTP requests ratio", "Latency", "Request volume", "Model quality",
            "Labelled predictions", "Feedback", "Label delay", "Rollout weight",
            "Rollout phase", "Rollout judgements", "Overload", "Gateway pressure"} <= titles
    assert [p["title"] for p in doc["panels"] if p["type"] == "row"] == [
        "Model quality", "Canary rollouts", "Overload and abuse"]
    overload = next(p for p in doc["panels"] if p["title"] == "Overload")
    assert [re.search(r"rate\((\w+)\{", t["expr"]).group(1) for t in overload["targets"]] == [
        "mlgate_requests_shed_total", "mlgate_requests_rate_limited_total",
        "mlgate_requests_timed_out_total", "mlgate_requests_revoked_total"]
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["deployment"]["type"] == "query"
    assert "label_values(" in variables["deployment"]["definition"]
    assert variables["route"]["definition"] == "label_values(mlgate_rollout_phase, route)"
    assert variables["datasource"]["type"] == "datasource"
    latency = next(p for p in doc["panels"] if p["title"] == "Latency")
    assert [t["legendFormat"] for t in latency["targets"]][:3] == ["p50", "p90", "p99"]
    for panel in doc["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert "$deployment" in target["expr"] or "$route" in target["expr"] \
                or "mlgate_records" in target["expr"] \
                or "mlgate_spool" in target["expr"] \
                or "mlgate_feedback_unmatched" in target["expr"] \
                or "mlgate_overload_level" in target["expr"] \
                or "mlgate_record_queue" in target["expr"], target["expr"]


@pytest.mark.parametrize("args", [
    ["check", "config", str(PROMETHEUS_DIR / "prometheus.yml")],
    ["check", "rules", str(PROMETHEUS_DIR / "alerts.yml")],
    ["test", "rules", str(PROMETHEUS_DIR / "alerts_test.yml")],
], ids=["check config", "check rules", "test rules"])
def test_promtool_accepts_the_config_and_rules_and_every_alert_fires_on_its_case(args):
    result = subprocess.run([tool("promtool"), *args], capture_output=True, text=True,
                            timeout=60, cwd=PROMETHEUS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_prometheus_scrapes_the_stack_and_loads_the_alert_rules(stack, prometheus):
    def target_up():
        targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]
        return [t for t in targets["activeTargets"] if t["health"] == "up"]

    (target,) = wait_until(target_up, 60, what="the mlgate target to be up")
    assert target["scrapeUrl"] == f"{stack.url}/metrics"
    groups = httpx.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(rules) == {"MlgateHighErrorRatio", "MlgateHighLatency", "MlgateNoReplicas",
                          "MlgateDeploymentFailed", "MlgateRecordsDropped",
                          "MlgateRolloutRolledBack", "MlgateRecordQueueFilling",
                          "MlgateShedding", "MlgateGatewayOverloaded"}
    assert all(r["health"] in ("ok", "unknown") for r in rules.values()), rules
    # the in-flight series the Kubernetes runtime's KEDA ScaledObject queries, as it queries it
    assert wait_until(lambda: query(
        prometheus, f'sum(mlgate_requests_in_flight{{deployment="{DEPLOYMENT}"}})'), 60)


@pytest.mark.parametrize(("title", "legend", "expr"), panel_queries(),
                         ids=[f"{t}: {legend}" for t, legend, _ in panel_queries()])
def test_every_dashboard_query_returns_data_for_the_deployment(stack, traffic, prometheus,
                                                                title, legend, expr):
    def answered():
        result = query(prometheus, expr)
        values = [float(r["value"][1]) for r in result]
        return values if values and all(math.isfinite(v) for v in values) else None

    values = wait_until(answered, 120, interval=1,
                        what=f"panel {title!r} ({legend}) to return data: {expr}")
    if (title, legend) == ("Availability", "ready"):
        assert values == [1.0]
    if title in ("CPU", "Memory") or (title, legend) == ("Request volume", "{{code}}"):
        assert sum(values) > 0, (title, values)
    if title == "Replicas":
        assert values == [1.0]
    if (title, legend) == ("Model quality", "{{metric}}"):
        assert len(values) == 3 and all(v != 0 for v in values), values  # mae, rmse, bias
    if title == "Rollout weight":  # no traffic through the route: its first step waits
        assert sorted(values) == [20.0, 80.0], values
    if title == "Rollout phase":
        assert values == [1.0]


def test_the_status_summary_shows_the_deployment_live(stack, traffic):
    def busy():
        with stack.client() as client:
            doc = client.get("/status/api/summary").json()
        (dep,) = [d for d in doc["deployments"] if d["id"] == DEPLOYMENT]
        return dep if dep["last_minute"]["requests"] >= 20 else None

    dep = wait_until(busy, 60, what="traffic to show on the status page")
    assert dep["state"] == "Ready" and dep["model_name"] == "wine"
    assert dep["replicas"] == {"desired": 1, "available": 1}
    minute = dep["last_minute"]
    assert minute["errors"] == 0 and minute["error_ratio"] == 0  # 400 and 404 are not 5xx
    assert 0 < minute["p50_ms"] <= minute["p90_ms"] <= minute["p99_ms"]
    assert len(dep["series"]["time"]) == 60 and max(dep["series"]["rate"]) > 0


def test_the_access_log_writes_one_json_line_per_request(stack):
    with stack.client() as client:
        resp = client.post(f"/model/{DEPLOYMENT}/api/model/invoke", json=GOOD,
                           headers={"Request-ID": "monitoring-access-1"})
        assert resp.status_code == 200
        client.get("/health", headers={"Request-ID": "monitoring-access-2"})

    def line(request_id: str):
        for raw in stack.stderr().splitlines():
            if raw.startswith("{") and f'"request_id":"{request_id}"' in raw:
                return json.loads(raw)
        return None

    entry = wait_until(lambda: line("monitoring-access-1"), 30, what="the access line")
    assert entry["logger"] == "mlgate.access" and entry["level"] == "info"
    assert entry["method"] == "POST" and entry["path"] == f"/model/{DEPLOYMENT}/api/model/invoke"
    assert entry["status"] == 200 and entry["deployment"] == DEPLOYMENT
    assert entry["route"] == "default" and entry["subject"] == "e2e"
    assert 0 < entry["upstream_ms"] <= entry["duration_ms"]
    health = wait_until(lambda: line("monitoring-access-2"), 30, what="the /health line")
    assert health["status"] == 200 and "deployment" not in health
    assert all("Bearer" not in raw for raw in stack.stderr().splitlines())


def test_the_access_log_can_be_switched_off(mlgate, tmp_path: Path):
    config = tmp_path / "mlgate.yaml"
    config.write_text("logging:\n  access_log: false\n")
    proc = mlgate(["--config", str(config)])
    with proc.client() as client:
        for _ in range(3):
            assert client.get("/health").status_code == 200
    assert proc.stop() == 0
    assert "shutting down" in proc.stderr()  # info lines are written: only access lines are off
    assert "mlgate.access" not in proc.stderr()
