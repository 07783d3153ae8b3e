"""Invoke latency through the gateway vs. directly to a predictor: median of N sequential calls.

    .venv/bin/python bench/invoke_latency.py [--calls 1000]

Starts one standalone predictor and one ``mlgate up`` (with its own replica of
the same model) on 127.0.0.1, calls each N times in turn over a keep-alive
connection (the gateway with a bearer token: authn and authz included), prints
the medians and p99s, and stops both.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import EXAMPLES, SEED_COLUMNS, SEED_ROW, MlgateProcess  # noqa: E402

BODY = {"columns": SEED_COLUMNS, "data": [SEED_ROW]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready")


def measure(client: httpx.Client, url: str, calls: int,
            headers: dict[str, str] | None = None) -> list[float]:
    for _ in range(50):
        client.post(url, json=BODY, headers=headers)
    out = []
    for _ in range(calls):
        t0 = time.perf_counter()
        resp = client.post(url, json=BODY, headers=headers)
        out.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200, resp.text
    return out


def summary(name: str, ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100)
    return f"{name:<10} median {statistics.median(ms):6.3f} ms   p99 {q[98]:6.3f} ms"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    port = free_port()
    direct = subprocess.Popen([sys.executable, "-m", "predictor", "--model-uri",
                               str(EXAMPLES / "models" / "wine-v1"), "--port", str(port)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as tmp:
        gateway = MlgateProcess(["-f", str(EXAMPLES / "wine-v1.yaml")], Path(tmp) / "data")
        try:
            gateway.start()
            wait_ready(f"http://127.0.0.1:{port}/healthcheck")
            with httpx.Client(timeout=30) as client:
                d = measure(client, f"http://127.0.0.1:{port}/api/model/invoke", args.calls)
                g = measure(client, f"{gateway.url}/model/wine-v1/api/model/invoke", args.calls,
                            gateway.headers)
        finally:
            gateway.stop()
            direct.terminate()
            direct.wait(30)
    print(f"{args.calls} sequential calls each, same run:")
    print(summary("direct", d))
    print(summary("gateway", g))
    print(f"added by the gateway: median {statistics.median(g) - statistics.median(d):.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
