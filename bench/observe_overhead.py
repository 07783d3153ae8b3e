"""What the observe filter adds per request, in process (no sockets).

    .venv/bin/python bench/observe_overhead.py

Prints microseconds per call of ``Observer.done`` — the work the filter does after a
model request has been answered: Prometheus counter + three histograms (labelled
children cached), the status page's rolling window, and the access-log line queued —
with the access log on and off, and the cost of one ``/metrics`` scrape with 10
deployments. Medians of 5 rounds.
"""

from __future__ import annotations

import logging
import statistics
import sys
import time
from pathlib import Path

from aiohttp.test_utils import make_mocked_request

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gateway.observe import SERVED_BY, UPSTREAM_SECONDS, Observer
from gateway.request_id import REQUEST_ID_KEY
from gateway.routing import RouteTable

N = 200_000


def per_call(n: int, fn) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def median_of(rounds: int, n: int, fn) -> float:
    return statistics.median(per_call(n, fn) for _ in range(rounds))


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=open("/dev/null", "w"))
    table = RouteTable()
    for i in range(10):
        table.upsert(f"wine-{i}", "wine", "1.0")
    dep = table.get("wine-0")
    request = make_mocked_request("POST", "/model/wine-0/api/model/invoke")
    request[SERVED_BY] = dep
    request[UPSTREAM_SECONDS] = 0.0021
    request[REQUEST_ID_KEY] = "bench-1"
    for access in (False, True):
        observer = Observer(table, access_log=access)
        if observer.access is not None:
            observer.access.start()
        us = median_of(5, N, lambda o=observer: o.done(request, 200, 0.0024))
        print(f"observe per request, access log {'on ' if access else 'off'}: {us:6.2f} µs")
        if observer.access is not None:
            observer.access.close()
    observer = Observer(table, access_log=False)
    for i in range(10):
        request[SERVED_BY] = table.get(f"wine-{i}")
        for code in (200, 400, 503):
            observer.done(request, code, 0.003)
    scrape = median_of(5, 50, observer.metrics.exposition)
    size = len(observer.metrics.exposition())
    print(f"/metrics with 10 deployments x 3 codes: {scrape / 1000:6.2f} ms, {size} bytes")


if __name__ == "__main__":
    main()
