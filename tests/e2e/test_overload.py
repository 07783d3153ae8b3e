"""Overload, as a user meets it: ``mlgate up`` with a slow real model driven at ten times what
it can serve, rate limits per caller across ``--workers 2``, and a process past its mark.

The timing bounds of the issue (admitted p99 within 2x of unloaded, refusals within 10 ms)
are what ``make bench`` measures (``bench/run.py --only overload``) on a quiet machine; here,
on a shared 2-core machine with the load generator in the same box, they are asserted with
generous margins, stated where they are. Behaviour — status codes, headers, counts, memory,
recovery — is asserted exactly.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import httpx
import orjson
import psutil
import pytest

from tests.conftest import EXAMPLES, ROOT, SEED_COLUMNS, SEED_ROW, wait_until
from tests.e2e.load import drive_blocking, percentile, sequential

pytestmark = pytest.mark.e2e
SLOW_BODY = orjson.dumps({"columns": ["a", "b"], "data": [[1.0, 2.0]]})
WINE_BODY = orjson.dumps({"columns": SEED_COLUMNS, "data": [SEED_ROW]})
CAPACITY = 20.0  # calls a second one replica of the slow model serves (50 ms each)


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory) -> Path:
    """The slow model (tests/e2e/slow_model.py) saved as an MLflow model from code."""
    import subprocess

    path = tmp_path_factory.mktemp("models") / "slow"
    script = (
        "import sys, mlflow, pandas as pd\n"
        "from mlflow.models import infer_signature\n"
        "x = pd.DataFrame({'a': [1.0, 2.0], 'b': [3.0, 4.0]})\n"
        "mlflow.pyfunc.save_model(sys.argv[1], python_model=sys.argv[2],\n"
        "    signature=infer_signature(x, x.sum(axis=1).to_numpy()),\n"
        "    input_example=x.head(1), pip_requirements=['mlflow'])\n")
    subprocess.run([sys.executable, "-c", script, str(path),
                    str(ROOT / "tests" / "e2e" / "slow_model.py")], check=True, timeout=300,
                   capture_output=True)
    return path


@pytest.fixture(scope="module")
def slow_stack(mlgate_module, slow_model, tmp_path_factory):
    manifest = tmp_path_factory.mktemp("manifests") / "slow.yaml"
    manifest.write_text(json.dumps({"kind": "ModelDeployment", "id": "slow", "spec": {
        "image": f"file://{slow_model}", "predictor": "odahu-ml-server",
        "minReplicas": 1, "maxReplicas": 1,
        # one call at a time is what a replica of this model really serves; nobody waits
        "annotations": {"mlgate.io/max-in-flight-per-replica": "1",
                        "mlgate.io/max-waiting": "0"}}}))
    stack = mlgate_module(["-f", str(manifest)])
    stack.wait_state("slow", "Ready")
    return stack


def gateway_rss_mb(stack) -> float:
    return psutil.Process(stack.proc.pid).memory_info().rss / 2**20


def metric(stack, name: str, **labels: str) -> float:
    text = httpx.get(f"{stack.url}/metrics", timeout=30).text
    total = 0.0
    for line in text.splitlines():
        if (line.startswith((name + "{", name + " "))
                and all(f'{k}="{v}"' in line for k, v in labels.items())):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_ten_times_capacity_sheds_fast_keeps_latency_and_recovers(slow_stack):
    stack = slow_stack
    url = f"{stack.url}/model/slow/api/model/invoke"
    sequential(url, SLOW_BODY, stack.headers, 10)  # warm: connections, caches
    unloaded = sequential(url, SLOW_BODY, stack.headers, 40)
    assert unloaded.statuses() == {200: 40}
    unloaded_p99 = percentile(unloaded.latencies(200), 99)
    idle_rss = gateway_rss_mb(stack)
    shed_before = metric(stack, "mlgate_requests_shed_total", deployment="slow")

    run = drive_blocking(url, SLOW_BODY, stack.headers, rate=10 * CAPACITY, seconds=6)

    assert run.errors == []
    statuses = run.statuses()
    assert set(statuses) == {200, 503}, statuses  # no other 5xx, nothing dropped
    refused = [o for o in run.outcomes if o.status == 503]
    assert all(o.headers.get("retry-after") == "1" for o in refused)
    assert all(o.headers.get("content-type") == "application/json" for o in refused)
    # the model was kept busy: about its capacity (20/s) got through
    assert statuses[200] >= 0.5 * CAPACITY * 6, statuses
    # How fast is make bench's (the overload scenario: admitted p99 against unloaded, refusal
    # p99). Here the properties that hold on any machine, however loaded: the queue is
    # bounded (unbounded, the admitted calls waited up to 17.7 s), and a refusal does not
    # wait for a turn (it comes sooner than one call of the model).
    waited = max(run.latencies(200)) - unloaded_p99
    assert waited <= 2.0, (max(run.latencies(200)), unloaded_p99)
    assert statistics.median(run.latencies(503)) < 1 / CAPACITY
    assert gateway_rss_mb(stack) - idle_rss <= 50  # the bound, as it is

    # every refusal counted with its reason
    assert wait_until(lambda: metric(stack, "mlgate_requests_shed_total", deployment="slow",
                                     reason="queue_full") - shed_before == statuses[503],
                      10, what="the shed counter")

    after = sequential(url, SLOW_BODY, stack.headers, 20)  # and it serves normally after
    assert after.statuses() == {200: 20}


def test_a_refusal_says_why_in_json_and_a_deadline_is_honoured(slow_stack):
    stack = slow_stack
    with httpx.Client(base_url=stack.url, headers=stack.headers, timeout=30) as client:
        resp = client.post("/model/slow/api/model/invoke", content=SLOW_BODY,
                           headers={"x-mlgate-timeout-ms": "10"})
        assert resp.status_code == 504
        assert resp.json()["reason"] in ("upstream_timeout", "deadline_exceeded")
        bad = client.post("/model/slow/api/model/invoke", content=SLOW_BODY,
                          headers={"x-mlgate-timeout-ms": "soon"})
        assert bad.status_code == 400 and "x-mlgate-timeout-ms" in bad.json()["message"]
        ok = client.post("/model/slow/api/model/invoke", content=SLOW_BODY,
                         headers={"x-mlgate-timeout-ms": "5000"})
        assert ok.status_code == 200 and ok.json()["prediction"] == [3.0]


@pytest.fixture(scope="module")
def limited_stack(mlgate_module, demo_models, tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "mlgate.yaml"
    config.write_text(
        "rate_limits:\n  rules:\n    - name: per-user\n      deployments: [\"wine-*\"]\n"
        "      key: sub\n      rate: 50\n      burst: 50\n")
    stack = mlgate_module(["--workers", "2", "--config", str(config),
                           "-f", str(EXAMPLES / "wine-v1.yaml")])
    stack.wait_state("wine-v1", "Ready")
    return stack


def test_a_rate_limit_per_sub_holds_across_processes_and_callers_are_apart(limited_stack):
    """50 req/s per sub, two processes: a client at 500 req/s gets about 50 a second of 200s
    and 429s for the rest, one at 20 req/s gets all 200s. The quota is one for the whole
    gateway (a shared table), so it holds whichever process a connection lands on."""
    import asyncio

    from tests.e2e.load import drive

    stack = limited_stack
    url = f"{stack.url}/model/wine-v1/api/model/invoke"
    greedy = {"Authorization": f"Bearer {stack.mint_token(['admin'], subject='greedy')}"}
    polite = {"Authorization": f"Bearer {stack.mint_token(['admin'], subject='polite')}"}
    seconds = 6

    async def both():
        return await asyncio.gather(drive(url, WINE_BODY, greedy, 500, seconds, 32),
                                    drive(url, WINE_BODY, polite, 20, seconds, 4))

    heavy, light = asyncio.run(both())
    assert heavy.errors == [] and light.errors == []
    assert light.statuses() == {200: 20 * seconds}
    counts = heavy.statuses()
    assert set(counts) == {200, 429}, counts
    # 50/s for the run plus the burst of 50 at its start (and a second of slack either way
    # for a run that took longer than planned on a busy machine)
    elapsed = heavy.seconds
    assert 50 * (elapsed - 1) <= counts[200] <= 50 * (elapsed + 1) + 50, (counts, elapsed)
    refused = [o for o in heavy.outcomes if o.status == 429]
    assert all(int(o.headers["retry-after"]) >= 1 for o in refused)
    assert all(o.headers["ratelimit-limit"] == "50" and o.headers["ratelimit-remaining"] == "0"
               for o in refused)
    assert all(o.headers["ratelimit-policy"] == '50;w=1;name="per-user"' for o in refused)
    served = [o for o in light.outcomes]
    assert all(int(o.headers["ratelimit-remaining"]) >= 0 for o in served)
    assert wait_until(lambda: metric(stack, "mlgate_requests_rate_limited_total",
                                     reason="per-user") == counts[429], 10,
                      what="both processes' 429s in /metrics")


def test_a_process_past_its_memory_mark_sheds_the_data_plane_but_answers_operators(mlgate,
                                                                                   tmp_path):
    config = tmp_path / "mlgate.yaml"
    config.write_text("overload:\n  max_memory_mb: 1\n")  # any process is past 1 MB
    stack = mlgate(["--config", str(config)])
    with stack.client() as client:
        wait_until(lambda: client.post("/api/v1/feedback", json={"y": 1}, headers={
            "model-name": "wine", "model-version": "1", "request-id": "r-1"}).status_code == 503,
                   30, what="the overload level to rise")
        refused = client.post("/api/v1/feedback", json={"y": 1}, headers={
            "model-name": "wine", "model-version": "1", "request-id": "r-2"})
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "2"
        assert "overloaded" in refused.json()["message"]  # the SDK form's error shape
        assert client.get("/api/v1/model/deployment").status_code == 200
        assert client.get("/health").status_code == 200
    assert metric(stack, "mlgate_overload_level") == 2
    assert metric(stack, "mlgate_requests_shed_total", reason="overload_memory") >= 2
    assert "gateway overload level 0 -> 2 (memory" in stack.stderr()
