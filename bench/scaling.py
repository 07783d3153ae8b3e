"""Scaling benchmark: cold start from zero to first answer, and scale-up from 1 to N under load.

Starts its own ``mlgate up`` (port 0, a temporary data dir) and the wine demo model,
then, over several runs each:

* **cold start**: a deployment with ``minReplicas: 0`` is left idle until it has
  no replica (and no process); one request is timed from send to answer (it is
  held by the gateway while a replica starts);
* **scale-up**: a deployment with ``minReplicas: 1``, ``maxReplicas: N`` and target
  concurrency 2 gets ``4 * N`` closed-loop clients; the time from the first request
  to ``availableReplicas == N`` (as the API reports it, polled every 0.1 s) is timed;
  the load stops and the deployment goes back to one replica before the next run.

Prints min / median / max of each. Usage:
``.venv/bin/python bench/scaling.py [--runs 5] [--replicas 3]`` (or ``make bench-scaling``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import MlgateProcess  # noqa: E402 - the e2e tests' way to run mlgate up

MODEL = ROOT / "examples" / "wine" / "models" / "wine-v1"
DEPLOYMENTS = "/api/v1/model/deployment"
SEED = {"columns": ["alcohol", "chlorides", "citric acid", "density", "fixed acidity",
                    "free sulfur dioxide", "pH", "residual sugar", "sulphates",
                    "total sulfur dioxide", "volatile acidity"],
        "data": [[12.8, 0.029, 0.48, 0.98, 6.2, 29, 3.33, 1.2, 0.39, 75, 0.66]]}


async def status(session: aiohttp.ClientSession, dep_id: str) -> dict:
    async with session.get(f"{DEPLOYMENTS}/{dep_id}") as resp:
        resp.raise_for_status()
        return (await resp.json())["status"]


async def wait_for(session: aiohttp.ClientSession, dep_id: str, check, timeout: float = 300,
                   interval: float = 0.1) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        current = await status(session, dep_id)
        if check(current):
            return current
        if time.monotonic() > deadline:
            raise SystemExit(f"{dep_id}: gave up waiting, status {current}")
        await asyncio.sleep(interval)


async def create(session: aiohttp.ClientSession, dep_id: str, annotations: dict[str, str],
                 **spec: int) -> None:
    body = {"id": dep_id, "spec": {"image": f"file://{MODEL}", "predictor": "odahu-ml-server",
                                   "annotations": annotations, **spec}}
    async with session.post(DEPLOYMENTS, json=body) as resp:
        if resp.status != 201:
            raise SystemExit(f"cannot create {dep_id}: {await resp.text()}")
    await wait_for(session, dep_id, lambda s: s["state"] == "Ready")


async def cold_starts(session: aiohttp.ClientSession, runs: int) -> list[float]:
    await create(session, "cold", {"mlgate.io/scale-to-zero-after": "1",
                                   "mlgate.io/window": "0.5", "mlgate.io/scale-down-delay": "0.5"},
                 minReplicas=0, maxReplicas=1)
    times = []
    for _ in range(runs):
        await wait_for(session, "cold", lambda s: s["replicas"] == 0)
        started = time.perf_counter()
        async with session.post("/model/cold/api/model/invoke", json=SEED) as resp:
            await resp.read()
            assert resp.status == 200, resp.status
        times.append(time.perf_counter() - started)
    return times


async def load_client(session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
    while not stop.is_set():
        async with session.post("/model/busy/api/model/invoke", json=SEED) as resp:
            await resp.read()
            if resp.status != 200:
                raise SystemExit(f"request failed under load: {resp.status}")


async def scale_ups(session: aiohttp.ClientSession, runs: int, replicas: int) -> list[float]:
    await create(session, "busy", {"mlgate.io/target-concurrency": "2", "mlgate.io/window": "1",
                                   "mlgate.io/scale-down-delay": "2"},
                 minReplicas=1, maxReplicas=replicas)
    times = []
    for _ in range(runs):
        await wait_for(session, "busy", lambda s: s["replicas"] == 1 and s["state"] == "Ready")
        stop = asyncio.Event()
        started = time.perf_counter()
        clients = [asyncio.create_task(load_client(session, stop)) for _ in range(4 * replicas)]
        try:
            await wait_for(session, "busy", lambda s: s["availableReplicas"] >= replicas)
            times.append(time.perf_counter() - started)
        finally:
            stop.set()
            await asyncio.gather(*clients)
    return times


def summary(name: str, values: list[float]) -> str:
    return (f"{name:<32} runs={len(values)}  min={min(values):.2f}s  "
            f"median={statistics.median(values):.2f}s  max={max(values):.2f}s")


async def main_async(url: str, headers: dict[str, str], runs: int, replicas: int) -> None:
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(base_url=url, timeout=timeout, headers=headers) as session:
        cold = await cold_starts(session, runs)
        up = await scale_ups(session, runs, replicas)
    print(summary("cold start (zero -> answer)", cold))
    print(summary(f"scale-up (1 -> {replicas} available)", up))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=3, help="N for the scale-up")
    args = parser.parse_args()
    if not (MODEL / "MLmodel").is_file():
        raise SystemExit("no demo model: run make demo-models")
    with tempfile.TemporaryDirectory(prefix="mlgate-bench-") as tmp:
        stack = MlgateProcess([], Path(tmp) / "data", env={
            "MLGATE_AUTOSCALER_INTERVAL": "0.1", "MLGATE_LOG_LEVEL": "warning"})
        try:
            stack.start()
            print(f"mlgate at {stack.url}; {os.cpu_count()} CPUs; model {MODEL.name}",
                  flush=True)
            asyncio.run(main_async(stack.url, stack.headers, args.runs, args.replicas))
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
