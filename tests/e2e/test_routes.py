"""ModelRoutes end to end: a real ``mlgate up`` with the two wine models and a slow shadow model.

Weighted splits (chi-square at p=0.001 over 10,000 requests), canary steps through the
CLI, sticky users, the override header, shadow traffic that never slows or fails the
caller, and a target killed mid-run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import aiohttp
import httpx
import orjson
import psutil
import pytest
from scipy.stats import chisquare

from tests.conftest import EXAMPLES, ROOT, SEED_COLUMNS, SEED_ROW, wait_until

pytestmark = pytest.mark.e2e

SHADOW_SLEEP = 2.0
MIRROR_LIMIT = 3
SEED = {"columns": SEED_COLUMNS, "data": [SEED_ROW]}
SHADOW_MODEL = f'''
import time

import mlflow
import pandas as pd


class Shadow(mlflow.pyfunc.PythonModel):
    """A deliberately slow model that fails on negative input."""

    def predict(self, context, model_input, params=None):
        if (model_input.to_numpy() < 0).any():
            raise RuntimeError("the shadow model refuses negative input")
        time.sleep({SHADOW_SLEEP})
        return pd.Series([0.0] * len(model_input), name="quality")


mlflow.models.set_model(Shadow())
'''


@pytest.fixture(scope="module")
def shadow_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import mlflow

    root = tmp_path_factory.mktemp("shadow")
    code = root / "shadow_model.py"
    code.write_text(SHADOW_MODEL)
    path = root / "model"
    mlflow.pyfunc.save_model(str(path), python_model=str(code),
                             pip_requirements=["mlflow", "pandas"],
                             metadata={"model_name": "shadow", "model_version": "0.1"})
    return path


@pytest.fixture(scope="module")
def stack(mlgate_module, demo_models, shadow_model, tmp_path_factory):
    manifest = tmp_path_factory.mktemp("manifests") / "shadow.yaml"
    manifest.write_text(f"kind: ModelDeployment\nid: shadow\nspec:\n  image: file://{shadow_model}"
                        "\n  predictor: odahu-ml-server\n  minReplicas: 1\n  maxReplicas: 1\n")
    env = {"MLGATE_GATEWAY_MIRROR_MAX_IN_FLIGHT": str(MIRROR_LIMIT),
           "MLGATE_STORAGE_FLUSH_INTERVAL": "0.2",
           # the shadow model sleeps on its event loop: keep health checks from killing it
           "MLGATE_LOCAL_HEALTH_FAILURES": "50"}
    proc = mlgate_module(["-f", str(EXAMPLES / "wine-v1.yaml"),
                          "-f", str(EXAMPLES / "wine-v2.yaml"), "-f", str(manifest)], env=env)
    for dep_id in ("wine-v1", "wine-v2", "shadow"):
        proc.wait_state(dep_id, "Ready")
    return proc


def cli(stack, *args: str) -> str:
    env = {**os.environ, "MLGATE_URL": stack.url, "MLGATE_TOKEN": stack.token}
    result = subprocess.run([sys.executable, "-m", "deploy.cli", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def create_route(stack, route_id: str, prefix: str, **spec) -> None:
    with stack.client() as client:
        resp = client.post("/api/v1/model/route", json={"id": route_id, "spec": {
            "urlPrefix": prefix, **spec}})
    assert resp.status_code == 201, resp.text


def split(v1: int, v2: int) -> list[dict]:
    return [{"mdName": "wine-v1", "weight": v1}, {"mdName": "wine-v2", "weight": v2}]


def hammer(stack, path: str, total: int, connections: int = 8) -> Counter:
    """``total`` invocations over ``connections`` keep-alive connections; targets counted."""
    body = orjson.dumps(SEED)
    headers = {**stack.headers, "Content-Type": "application/json"}
    counts: Counter = Counter()

    async def run() -> None:
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(stack.url, connector=connector,
                                         headers=headers) as session:
            async def work(n: int) -> None:
                for _ in range(n):
                    async with session.post(path, data=body) as resp:
                        text = await resp.read()
                        assert resp.status == 200, text
                        counts[resp.headers["x-mlgate-target"]] += 1

            await asyncio.gather(*(work(total // connections) for _ in range(connections)))

    asyncio.run(run())
    assert sum(counts.values()) == total // connections * connections
    return counts


def records(stack, kind: str = "request_response") -> list[dict]:
    out = []
    for path in (stack.data_dir / "storage" / kind).rglob("*.json"):
        out += [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return out


def fits(counts: Counter, weights: dict[str, int]) -> bool:
    total = sum(counts.values())
    observed = [counts[name] for name in weights]
    expected = [total * w / 100 for w in weights.values()]
    return chisquare(observed, expected).pvalue > 0.001


def test_canary_steps_split_by_weight_and_the_records_prove_it(stack):
    out = cli(stack, "route", "create", "-f", str(EXAMPLES / "canary-route.yaml"))
    assert "Model route wine-canary created" in out
    path = "/custom/wine-canary/api/model/invoke"
    first = hammer(stack, path, 10_000)
    assert fits(first, {"wine-v1": 90, "wine-v2": 10}), first
    out = cli(stack, "route", "set-weights", "wine-canary", "wine-v1=50", "wine-v2=50")
    assert "Model route wine-canary updated: wine-v1=50 wine-v2=50" in out
    second = hammer(stack, path, 10_000)
    assert fits(second, {"wine-v1": 50, "wine-v2": 50}), second
    cli(stack, "route", "set-weights", "wine-canary", "wine-v1=100", "wine-v2=0")
    assert hammer(stack, path, 400) == {"wine-v1": 400}
    expected = first + second + Counter({"wine-v1": 400})

    def logged():
        found = Counter(r["target"] for r in records(stack) if r.get("route") == "wine-canary")
        return found if found == expected else None

    wait_until(logged, 60, what="every routed request's record")
    canary = [r for r in records(stack) if r.get("route") == "wine-canary"]
    assert {(r["target"], r["model_version"]) for r in canary} == {("wine-v1", "1.0"),
                                                                   ("wine-v2", "2.0")}
    assert {r["assignment"] for r in canary} == {"random"}
    assert all(r["deployment_id"] == r["target"] and r["route_id"] == "wine-canary"
               for r in canary)


def test_sticky_users_keep_their_variant_and_a_step_moves_only_its_share(stack):
    create_route(stack, "wine-sticky", "/custom/wine-sticky", modelDeployments=split(50, 50),
                 sticky={"header": "x-user-id"})
    users = [f"user-{i}" for i in range(300)]

    def assignment() -> dict[str, str]:
        out = {}
        with stack.client() as client:
            for user in users:
                seen = {client.post("/custom/wine-sticky/api/model/invoke", json=SEED,
                                    headers={"x-user-id": user}).headers["x-mlgate-target"]
                        for _ in range(2)}
                assert len(seen) == 1, (user, seen)
                out[user] = seen.pop()
        return out

    before = assignment()
    assert set(before.values()) == {"wine-v1", "wine-v2"}
    cli(stack, "route", "set-weights", "wine-sticky", "wine-v1=60", "wine-v2=40")
    after = assignment()
    moved = [u for u in users if before[u] != after[u]]
    assert all((before[u], after[u]) == ("wine-v2", "wine-v1") for u in moved)
    assert 10 <= len(moved) <= 60  # 10% of 300 expected


def test_override_header_is_for_admins(stack):
    create_route(stack, "wine-dark", "/custom/wine-dark", modelDeployments=split(100, 0))
    path = "/custom/wine-dark/api/model/invoke"
    with stack.client() as client:
        resp = client.post(path, json=SEED, headers={"x-mlgate-override-target": "wine-v2"})
        assert resp.status_code == 200
        assert (resp.headers["x-mlgate-target"], resp.headers["model-version"]) == ("wine-v2",
                                                                                   "2.0")
    scientist = stack.mint_token(["data_scientist"])
    with httpx.Client(base_url=stack.url, timeout=30,
                      headers={"Authorization": f"Bearer {scientist}"}) as client:
        assert client.post(path, json=SEED).headers["x-mlgate-target"] == "wine-v1"
        denied = client.post(path, json=SEED, headers={"x-mlgate-override-target": "wine-v2"})
        assert denied.status_code == 403
        assert denied.json()["reason"] == "override_forbidden"


def test_shadow_copies_never_slow_or_fail_the_caller_and_are_logged(stack):
    create_route(stack, "wine-shadow", "/custom/wine-shadow", mirror="shadow",
                 modelDeployments=[{"mdName": "wine-v1"}])
    path = "/custom/wine-shadow/api/model/invoke"

    def shadow_records(wanted: set[str]) -> list[dict]:
        return [r for r in records(stack) if r["request_id"] in wanted and r.get("mirror")]

    negative = {"columns": SEED_COLUMNS, "data": [[-x for x in SEED_ROW]]}
    with stack.client() as client:
        resp = client.post(path, json=negative, headers={"Request-ID": "shadow-fails"})
    assert resp.status_code == 200  # the primary answered; the shadow's 500 never shows
    [failed] = wait_until(lambda: shadow_records({"shadow-fails"}), 60,
                          what="the failed shadow's record")
    assert (failed["model_name"], failed["response_status"]) == ("shadow", "500")

    ids = [f"shadow-{i}" for i in range(12)]
    with stack.client() as client:
        for request_id in ids:
            started = time.monotonic()
            resp = client.post(path, json=SEED, headers={"Request-ID": request_id})
            elapsed = time.monotonic() - started
            assert resp.status_code == 200 and resp.headers["x-mlgate-target"] == "wine-v1"
            assert elapsed < SHADOW_SLEEP / 2, f"a primary call waited for the shadow: {elapsed}"
    # The shadow answers one copy per SHADOW_SLEEP; the first copies fill the limit of
    # copies in flight and the rest are dropped, counted and warned about.
    copied = wait_until(lambda: shadow_records(set(ids)), 60, what="the shadow's records")
    wait_until(lambda: "mirror copies dropped" in stack.stderr(), 30, what="the drop warning")
    for record in copied:
        assert (record["model_name"], record["model_version"]) == ("shadow", "0.1")
        assert (record["route"], record["target"], record["response_status"]) == (
            "wine-shadow", "shadow", "200")
    primaries = {r["request_id"]: r for r in records(stack)
                 if r["request_id"] in ids and not r.get("mirror")}
    assert set(primaries) == set(ids)
    assert {(r["model_name"], r["model_version"], r["target"]) for r in primaries.values()} == {
        ("wine", "1.0", "wine-v1")}
    bodies = {r["request_id"]: r for r in records(stack, "response_body")
              if r["model_name"] == "shadow"}
    for record in copied:  # the shadow's own answer, logged under its own name
        assert orjson.loads(bodies[record["request_id"]]["response_content"]) == {
            "prediction": [0.0], "columns": ["quality"]}


def replica_pids(stack, model_dir: str) -> list[int]:
    pids = []
    for child in psutil.Process(stack.proc.pid).children():
        try:
            if model_dir in " ".join(child.cmdline()):
                pids.append(child.pid)
        except psutil.Error:  # exited meanwhile, or a zombie not reaped yet
            continue
    return pids


def test_a_killed_target_costs_only_requests_it_had_and_gets_traffic_back(stack):
    create_route(stack, "wine-kill", "/custom/wine-kill", modelDeployments=split(50, 50))
    path = "/custom/wine-kill/api/model/invoke"
    workers = 4
    results: list[tuple[float, float, int, str]] = []  # sent, answered, status, target
    stop = threading.Event()

    def work() -> None:
        with stack.client(timeout=30) as client:
            while not stop.is_set():
                sent = time.monotonic()
                resp = client.post(path, json=SEED)
                reason = "" if resp.status_code == 200 else resp.json().get("reason", "")
                results.append((sent, time.monotonic(), resp.status_code,
                                resp.headers.get("x-mlgate-target") or reason))

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(results) > 200, 60, what="traffic before the kill")
        [pid] = replica_pids(stack, "models/wine-v2")
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: [p for p in replica_pids(stack, "models/wine-v2") if p != pid], 120,
                   what="a restarted wine-v2 replica")
        restarted_at = time.monotonic()
        stack.wait_state("wine-v2", "Ready")
        ready_at = time.monotonic()
        wait_until(lambda: [r for r in results if r[0] > ready_at and r[3] == "wine-v2"], 60,
                   what="traffic to wine-v2 again")
    finally:
        stop.set()
        for t in threads:
            t.join()
    failures = [r for r in results if r[2] != 200]
    # Only requests already handed to the dying replica may fail: those in flight, and
    # those that reached its sockets while the kernel tore the killed process down (a
    # few ms, before any sign of its death). They fail as broken exchanges (mlgate does
    # not resend what may have reached a model); at most one per client connection.
    # Once the death shows, nothing fails: connects are refused and move to wine-v1.
    assert len(failures) <= workers, failures
    assert {r[3] for r in failures} <= {"upstream_protocol_error"}
    if failures:
        death_seen = min(answered for _sent, answered, *_ in failures)
        assert all(sent < death_seen for sent, *_ in failures), failures
    during = Counter(r[3] for r in results if killed_at < r[0] and r[1] < restarted_at)
    assert during["wine-v1"] > 0 and during["wine-v2"] == 0
