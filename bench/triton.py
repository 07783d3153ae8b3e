"""Triton directly vs. through the gateway: requests/s, p50 and p99 with N connections.

    make bench-triton      # or: .venv/bin/python bench/triton.py [--runs 3] [--connections 8]

Starts ``mlgate up -f examples/wine/wine-triton.yaml`` (one Triton replica through the
local runtime) and drives it with a closed-loop client: ``--connections`` keep-alive
connections, each sending the next KServe v2 JSON infer request (one row of the wine
model) as soon as the previous answer arrived, for ``--seconds`` after a warm-up.
Each run measures Triton's own HTTP port, then ``/model/wine-triton/...`` on the
gateway (which also logs every exchange to storage); the table gives min / median /
max over the runs. Client, gateway and Triton share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import EXAMPLES, MlgateProcess  # noqa: E402

ROW = [7.0, 0.27, 0.36, 20.7, 0.045, 45.0, 170.0, 1.001, 3.0, 0.45, 8.8]
BODY = orjson.dumps({"inputs": [{"name": "input0", "shape": [1, 11], "datatype": "FP32",
                                 "data": [ROW]}]})


@dataclass
class Result:
    requests: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def closed_loop(url: str, headers: dict[str, str], connections: int, seconds: float,
                      warmup: float) -> Result:
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)
    latencies: list[float] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     headers={"Content-Type": "application/json", **headers}
                                     ) as session:
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + seconds

        async def worker() -> None:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                async with session.post(url, data=BODY) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{url}: {resp.status} {await resp.text()}")
                t1 = time.perf_counter()
                if t0 >= measure_from and t1 <= stop_at:
                    latencies.append((t1 - t0) * 1000)

        await asyncio.gather(*(worker() for _ in range(connections)))
    return Result(len(latencies), seconds, latencies)


def spread(values: list[float]) -> str:
    return (f"{min(values):10.1f} {statistics.median(values):10.1f} {max(values):10.1f}")


def spread_ms(values: list[float]) -> str:
    return (f"{min(values):10.2f} {statistics.median(values):10.2f} {max(values):10.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    results: dict[str, list[Result]] = {"direct": [], "gateway": []}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        stack = MlgateProcess(["-f", str(EXAMPLES / "wine-triton.yaml")], data_dir)
        try:
            stack.start()
            stack.wait_state("wine-triton", "Ready")
            replica = json.loads((data_dir / "triton" / "wine-triton-0" / "replica.json")
                                 .read_text())
            urls = {
                "direct": f"http://{replica['host']}:{replica['http_port']}/v2/models/wine/infer",
                "gateway": f"{stack.url}/model/wine-triton/v2/models/wine/infer",
            }
            for run in range(1, args.runs + 1):
                for name, url in urls.items():
                    headers = stack.headers if name == "gateway" else {}
                    result = uvloop.run(closed_loop(url, headers, args.connections,
                                                    args.seconds, args.warmup))
                    results[name].append(result)
                    print(f"run {run} {name:<8} {result.rps:8.1f} req/s  "
                          f"p50 {result.quantile(0.5):6.2f} ms  "
                          f"p99 {result.quantile(0.99):6.2f} ms", flush=True)
        finally:
            stack.stop()
    print(f"\n{args.runs} runs, {args.connections} connections, {args.seconds:g} s each "
          f"(after {args.warmup:g} s warm-up); min / median / max over runs")
    print(f"{'':22} {'min':>10} {'median':>10} {'max':>10}")
    for name in ("direct", "gateway"):
        runs = results[name]
        print(f"{name + ' req/s':22} {spread([r.rps for r in runs])}")
        print(f"{name + ' p50 (ms)':22} {spread_ms([r.quantile(0.5) for r in runs])}")
        print(f"{name + ' p99 (ms)':22} {spread_ms([r.quantile(0.99) for r in runs])}")
    ratio = [g.rps / d.rps for d, g in zip(results["direct"], results["gateway"], strict=True)]
    print(f"{'gateway/direct req/s':22} {min(ratio):10.2f} {statistics.median(ratio):10.2f} "
          f"{max(ratio):10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
