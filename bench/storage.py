"""Storage throughput and the spool's cost on the feedback endpoint, from one run.

    make bench-storage            # or: .venv/bin/python bench/storage.py [--exchanges N]

1. Sustained records/s through the spooling writer into moto's S3 server
   (started here on 127.0.0.1) and into the local backend: N exchanges (two
   records each) are offered as fast as the writer takes them, timed until
   every record is in the bucket.
2. Feedback endpoint latency over HTTP (sequential POSTs on one keep-alive
   connection): the real path (spool append + fsync, group commit) against a
   baseline that writes each record straight to the local backend without
   fsync and without a spool. Median and p99, and their ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import feedback  # noqa: E402
from storage import (  # noqa: E402
    Exchange,
    LocalBackend,
    RecordWriter,
    WriterConfig,
    object_key,
)
from storage.backends.s3 import S3Backend  # noqa: E402
from tests.storage.servers import S3_ENV, start_moto  # noqa: E402

BODY = orjson.dumps({"columns": ["alcohol", "pH"], "data": [[12.8, 3.33]]})
ANSWER = orjson.dumps({"prediction": [5.72], "columns": ["quality"]})
REQUEST_HEADERS = [("Content-Type", "application/json"), ("Accept", "*/*"),
                   ("User-Agent", "bench/1.0"), ("Authorization", "Bearer secret")]
RESPONSE_HEADERS = [("Content-Type", "application/json"), ("model-name", "wine"),
                    ("model-version", "1.0")]


def exchange(i: int) -> Exchange:
    return Exchange(
        request_id=f"bench-{i}", model_name="wine", model_version="1.0", method="POST",
        uri="/model/wine-v1/api/model/invoke", upstream_path="/api/model/invoke",
        host="127.0.0.1:5080", scheme="http", request_headers=REQUEST_HEADERS,
        request_body=BODY, status=200, response_headers=RESPONSE_HEADERS,
        response_body=ANSWER, when=datetime.now(UTC))


async def sustained(backend: Any, spool: Path, exchanges: int) -> float:
    """Records per second from the first offer until all are stored in the bucket."""
    writer = RecordWriter(backend, spool, WriterConfig(shutdown_timeout=60,
                                                       max_pending_records=exchanges + 1))
    await writer.start()
    started = time.perf_counter()
    for i in range(exchanges):
        if not writer.offer(exchange(i)):
            raise RuntimeError("the writer dropped a record during the benchmark")
        if i % 500 == 0:
            await asyncio.sleep(0)  # let the spooler and uploaders run alongside
    await writer.flush()
    elapsed = time.perf_counter() - started
    records = writer.stats.written["request_response"] + writer.stats.written["response_body"]
    await writer.close()
    assert records == 2 * exchanges, writer.stats.as_dict()
    return records / elapsed


class DirectLocalWriter:
    """Baseline: each feedback record its own object, straight to disk, no fsync, no spool."""

    def __init__(self, root: Path) -> None:
        self.backend = LocalBackend(root, fsync=False)
        self.n = 0

    async def write_durable(self, kind: str, record: dict[str, Any], when: datetime) -> None:
        self.n += 1
        key = object_key("", kind, record["model_name"], record["model_version"], when, self.n)
        await self.backend.put(key, orjson.dumps(record) + b"\n")


async def feedback_latency(writer: Any, calls: int) -> list[float]:
    app = web.Application()
    feedback.add_routes(app, writer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}/feedback/model/"
    times = []
    try:
        async with aiohttp.ClientSession() as session:
            for i in range(calls + 100):
                headers = {"x-model-name": "wine", "x-model-version": "1.0",
                           "Request-ID": f"fb-{i}", "Content-Type": "application/json"}
                t0 = time.perf_counter()
                async with session.post(url, data=b'{"truthful": 1}', headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"feedback answered {resp.status}")
                if i >= 100:  # the first 100 warm up
                    times.append((time.perf_counter() - t0) * 1000)
    finally:
        await runner.cleanup()
    return times


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


async def main(exchanges: int, calls: int) -> None:
    os.environ.update(S3_ENV)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        s3 = start_moto(tmp)
        try:
            bucket = s3.new_bucket()
            s3_rate = await sustained(S3Backend(bucket, endpoint_url=s3.url), tmp / "spool-s3",
                                      exchanges)
        finally:
            s3.server.stop()
        local_rate = await sustained(LocalBackend(tmp / "local"), tmp / "spool-local", exchanges)

        spooled = RecordWriter(LocalBackend(tmp / "fb-spool"), tmp / "spool-fb")
        await spooled.start()
        with_spool = await feedback_latency(spooled, calls)
        await spooled.close()
        baseline = await feedback_latency(DirectLocalWriter(tmp / "fb-direct"), calls)

    print(f"sustained records/s, spool on ({2 * exchanges} records): "
          f"moto S3 {s3_rate:,.0f}, local {local_rate:,.0f} (S3/local {s3_rate / local_rate:.2f})")
    m_spool, m_base = statistics.median(with_spool), statistics.median(baseline)
    p_spool, p_base = p99(with_spool), p99(baseline)
    print(f"feedback latency ms, {calls} sequential calls: spool+fsync median {m_spool:.3f} "
          f"p99 {p_spool:.3f}; local no fsync median {m_base:.3f} p99 {p_base:.3f}")
    print(f"ratio spool/baseline: median {m_spool / m_base:.2f}, p99 {p_spool / p_base:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exchanges", type=int, default=50_000,
                        help="exchanges offered per backend (two records each)")
    parser.add_argument("--calls", type=int, default=2000, help="feedback calls per variant")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main(args.exchanges, args.calls))
