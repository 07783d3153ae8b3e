"""The feedback loop's benchmarks, run by ``bench/run.py`` (scenarios ``joiner`` and ``export``).

* ``joiner`` — durable feedback records/s through ``POST /api/v1/feedback`` with the live join
  on (``quality.enabled: true``, the default) vs. off, the two stacks measured run by run in
  turn; every feedback names one of ``--joiner-predictions`` predictions made first, so the
  join does its real work (a label, or a correction). Also the memory one pending prediction
  costs, measured in process (tracemalloc) over 200,000 predictions like the gateway's.
* ``export`` — ``mlgate dataset export`` (DuckDB engine, Parquet, hive partitions) of
  ``--export-predictions`` predictions with half of them labelled, against a hand-written
  DuckDB SQL join of the same files into one Parquet file, in the same run.

Standalone: ``.venv/bin/python bench/quality.py [--only joiner,export]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import SEED_COLUMNS, SEED_ROW  # noqa: E402

FEEDBACK_TARGET_RATIO = 0.9
EXPORT_TARGET_RATIO = 1.5
START = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


# -- memory per pending prediction ------------------------------------------------------------

def prediction_record(rid: str, when: datetime, value: float) -> dict[str, Any]:
    return {"request_id": rid, "model_name": "wine", "model_version": "1.0",
            "response_content": f'{{"prediction":[{value}],"columns":["quality"]}}',
            "time": when.strftime("%Y-%m-%d %H:%M:%S +0000"), "response_status": "200",
            "deployment_id": "wine-v1", "upstream_ms": 2.5}


def bytes_per_pending(count: int = 200_000) -> dict[str, float]:
    from feedback import JoinLimits, QualityIndex

    records = [prediction_record(str(uuid.uuid4()), START + timedelta(seconds=i // 50),
                                 5 + (i % 7) / 10) for i in range(count)]
    index = QualityIndex({}, JoinLimits(max_pending=count + 1))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for record in records:
        index.add_prediction(record)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    index = QualityIndex({}, JoinLimits(max_pending=count + 1))  # timed without tracing
    started = time.perf_counter()
    for record in records:
        index.add_prediction(record)
    seconds = time.perf_counter() - started
    feedback = [{"request_id": r["request_id"], "model_name": "wine", "model_version": "1.0",
                 "payload": {"json": {"truthful": 6}}, "time": r["time"],
                 "time_us": i} for i, r in enumerate(records)]
    started = time.perf_counter()
    for fb in feedback:
        index.add_feedback(fb, START.timestamp())
    join_seconds = time.perf_counter() - started
    assert len(index.slots) == count
    return {"predictions": count, "bytes_per_pending_prediction": round(used / count, 1),
            "us_per_prediction": round(seconds / count * 1e6, 2),
            "us_per_label": round(join_seconds / count * 1e6, 2)}


# -- feedback throughput, join on vs. off -----------------------------------------------------

def counter_script(tmp: Path, name: str, method: str, body: str, headers: dict[str, str],
                   ids: int) -> Path:
    """A wrk script whose requests cycle through Request-IDs ``q-0`` ... ``q-<ids-1>``."""
    fixed = ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    path = tmp / f"{name}.lua"
    path.write_text(f"""
local counter = 0
local body = {json.dumps(body)}
function setup(thread)
  thread:set("offset", math.random(0, {ids}))
end
function request()
  counter = counter + 1
  local headers = {{{fixed}}}
  headers["request-id"] = "q-" .. ((counter + (offset or 0)) % {ids})
  return wrk.format({json.dumps(method)}, nil, headers, body)
end
""")
    return path


def scenario_joiner(args: argparse.Namespace, tmp: Path, run: Any) -> dict[str, Any]:
    """``run``: bench/run.py (its processes, wrk and logging)."""
    up_port = run.free_port()
    upstream = run.Service("upstream", [run.PY, str(run.BENCH / "upstream.py"), "--port",
                                        str(up_port)], tmp / "q-upstream.log",
                           ready_line="upstream ready on ").start()
    stacks: dict[str, Any] = {}
    try:
        for mode in ("on", "off"):
            service, url, token = run.start_mlgate(
                tmp / f"mlgate-join-{mode}", f"127.0.0.1:{up_port}", args.workers,
                env={"MLGATE_QUALITY_ENABLED": "true" if mode == "on" else "false"})
            stacks[mode] = (service, url, {"Authorization": f"Bearer {token}"})
        ids = args.joiner_predictions
        for mode, (_service, url, auth) in stacks.items():
            invoke = counter_script(tmp, f"invoke-{mode}", "POST", run.INVOKE_BODY,
                                    auth | {"Content-Type": "application/json"}, ids)
            run.wait_http(url + run.INVOKE_PATH, auth | {"Content-Type": "application/json"},
                          run.INVOKE_BODY)
            made = 0
            while made < ids:
                made += int(run.run_wrk(url + run.INVOKE_PATH, invoke, 3,
                                        args.connections)["requests"])
            run.log(f"joiner {mode}: {made} predictions made")
        time.sleep(2)  # every prediction through the spool and into the join
        rps: dict[str, list[float]] = {"on": [], "off": []}
        scripts = {mode: counter_script(
            tmp, f"feedback-{mode}", "POST", run.FEEDBACK_BODY,
            auth | {"Content-Type": "application/json", "model-name": "fast",
                    "model-version": "1"}, ids) for mode, (_s, _u, auth) in stacks.items()}
        for i in range(args.runs):
            for mode in ("on", "off") if i % 2 == 0 else ("off", "on"):
                service, url, _auth = stacks[mode]
                result = run.run_wrk(url + "/api/v1/feedback", scripts[mode], args.duration,
                                     args.connections, service)
                rps[mode].append(result["rps"])
                run.log(f"joiner {mode} run {i + 1}: {result['rps']:.0f} feedback/s")
        ratios = [on / off for on, off in zip(rps["on"], rps["off"], strict=True)]
        memory = bytes_per_pending()
        run.log(f"join: {memory['bytes_per_pending_prediction']:.0f} bytes per pending "
                "prediction")
        return {
            "command": "wrk POST /api/v1/feedback (Request-IDs cycling over "
                       f"{ids} predictions) against mlgate up with quality.enabled true / false,"
                       f" {args.connections} connections, {args.duration:g}s, interleaved",
            "feedback_per_s": {mode: spread(v) for mode, v in rps.items()},
            "ratio_on_off": spread(ratios),
            "memory": memory,
            "target_ratio": FEEDBACK_TARGET_RATIO,
            "met": statistics.median(ratios) >= FEEDBACK_TARGET_RATIO,
        }
    finally:
        for service, _url, _auth in stacks.values():
            service.stop()
        upstream.stop()


# -- export -----------------------------------------------------------------------------------

def write_records(root: Path, predictions: int, labelled: int) -> dict[str, int]:
    """A local bucket's records of ``predictions`` one-row calls (the gateway's shapes), one
    hour of objects per 100,000 calls, ``labelled`` of them with feedback."""
    from storage import object_key

    request = orjson.dumps({"columns": SEED_COLUMNS, "data": [SEED_ROW]}).decode()
    headers = {":method": "POST", ":path": "/api/model/invoke", ":authority": "127.0.0.1:5080",
               ":scheme": "http", "x-original-uri": "/model/wine-v1/api/model/invoke",
               "content-type": "application/json", "user-agent": "python-httpx/0.28.1",
               "accept": "*/*"}
    per_object = 10_000
    sizes = {"response_body": 0, "request_response": 0, "feedback": 0}
    for start in range(0, predictions, per_object):
        when = START + timedelta(hours=start // 100_000, seconds=(start % 100_000) // 30)
        lines: dict[str, list[bytes]] = {k: [] for k in sizes}
        for i in range(start, min(start + per_object, predictions)):
            rid = f"req-{i:08d}"
            t = (when + timedelta(seconds=(i - start) // 30)).strftime(
                "%Y-%m-%d %H:%M:%S +0000")
            value = 5 + (i % 17) / 10
            lines["response_body"].append(orjson.dumps({
                "request_id": rid, "model_name": "wine", "model_version": "1.0",
                "response_content": f'{{"prediction":[{value}],"columns":["quality"]}}',
                "time": t, "response_status": "200", "deployment_id": "wine-v1",
                "upstream_ms": 2.1}))
            lines["request_response"].append(orjson.dumps({
                "request_id": rid, "request_content": request,
                "request_uri": "/model/wine-v1/api/model/invoke", "request_http_method": "POST",
                "request_http_headers": {**headers, "request-id": rid},
                "request_host": "127.0.0.1:5080", "response_status": "200",
                "response_http_headers": {":status": "200", "model-name": "wine",
                                          "model-version": "1.0", "request-id": rid},
                "model_name": "wine", "model_version": "1.0", "time": t,
                "deployment_id": "wine-v1"}))
            if i % (predictions // labelled if labelled else 1) == 0 and labelled:
                lines["feedback"].append(orjson.dumps({
                    "request_id": rid, "model_name": "wine", "model_version": "1.0",
                    "payload": {"json": {"truthful": 5 + i % 3}}, "time": t,
                    "time_us": i}))
        for kind, batch in lines.items():
            if not batch:
                continue
            path = root / object_key("", kind, "wine", "1.0", when, f"{start:012d}")
            path.parent.mkdir(parents=True, exist_ok=True)
            data = b"\n".join(batch) + b"\n"
            path.write_bytes(data)
            sizes[kind] += len(data)
    return sizes


def baseline_sql(root: Path, out: Path) -> str:
    """A hand-written DuckDB join of the same files into one Parquet file: what a user would
    write without mlgate (no dedup, no typing pass, one row per call, one output file)."""
    features = ", ".join(f"CAST(json_extract(r.row, '$[{i}]') AS DOUBLE) AS \"{name}\""
                         for i, name in enumerate(SEED_COLUMNS))
    return f"""
    COPY (
      WITH p AS (SELECT request_id, deployment_id, model_version,
                        strptime(time, '%Y-%m-%d %H:%M:%S %z') AS time,
                        CAST(json_extract(response_content, '$.prediction[0]') AS DOUBLE)
                          AS prediction
                 FROM read_json('{root}/response_body/**/*.json', format='newline_delimited',
                                columns={{request_id: 'VARCHAR', deployment_id: 'VARCHAR',
                                          model_version: 'VARCHAR', time: 'VARCHAR',
                                          response_content: 'VARCHAR'}},
                                hive_partitioning=false)),
           r AS (SELECT request_id, deployment_id,
                        json_extract(request_content, '$.data[0]') AS row
                 FROM read_json('{root}/request_response/**/*.json',
                                format='newline_delimited',
                                columns={{request_id: 'VARCHAR', deployment_id: 'VARCHAR',
                                          request_content: 'VARCHAR'}},
                                hive_partitioning=false)),
           f AS (SELECT request_id, CAST(json_extract(payload, '$.json') AS VARCHAR) AS feedback,
                        CAST(json_extract(payload, '$.json.truthful') AS DOUBLE) AS label,
                        strptime(time, '%Y-%m-%d %H:%M:%S %z') AS feedback_time
                 FROM read_json('{root}/feedback/**/*.json', format='newline_delimited',
                                columns={{request_id: 'VARCHAR', payload: 'JSON',
                                          time: 'VARCHAR'}}, hive_partitioning=false))
      SELECT p.request_id, 0 AS row, p.deployment_id, p.time, {features}, p.prediction,
             f.label, f.feedback_time, f.feedback, p.model_version
      FROM p LEFT JOIN r USING (request_id, deployment_id) LEFT JOIN f USING (request_id)
    ) TO '{out}' (FORMAT PARQUET)"""


def scenario_export(args: argparse.Namespace, tmp: Path, log: Any) -> dict[str, Any]:
    import duckdb

    from feedback.dataset import ExportQuery, Target, export
    from storage import LocalBackend

    root = tmp / "export-bucket"
    started = time.perf_counter()
    sizes = write_records(root, args.export_predictions, args.export_predictions // 2)
    log(f"export: wrote {args.export_predictions} predictions' records "
        f"({sum(sizes.values()) / 1e6:.0f} MB) in {time.perf_counter() - started:.0f}s")
    timings: dict[str, list[float]] = {"mlgate": [], "baseline": []}
    rows = 0
    for i in range(args.runs):
        for name in ("mlgate", "baseline") if i % 2 == 0 else ("baseline", "mlgate"):
            out = tmp / f"export-{name}-{i}"
            began = time.perf_counter()
            if name == "mlgate":
                result = asyncio.run(export(LocalBackend(root), "", ExportQuery("wine"),
                                            Target(directory=out)))
                rows = result.rows
            else:
                out.mkdir()
                duckdb.connect().execute(baseline_sql(root, out / "data.parquet"))
            timings[name].append(time.perf_counter() - began)
            log(f"export run {i + 1}, {name}: {timings[name][-1]:.2f}s")
    ratios = [m / b for m, b in zip(timings["mlgate"], timings["baseline"], strict=True)]
    return {
        "command": f"mlgate's DuckDB export (feedback.dataset.export) of "
                   f"{args.export_predictions} predictions, half labelled, vs. a hand-written "
                   "DuckDB SQL join of the same files (bench/quality.py baseline_sql)",
        "predictions": args.export_predictions, "rows": rows,
        "input_bytes": sizes,
        "seconds": {name: spread(v) for name, v in timings.items()},
        "ratio_mlgate_baseline": spread(ratios),
        "target_ratio": EXPORT_TARGET_RATIO,
        "met": statistics.median(ratios) <= EXPORT_TARGET_RATIO,
    }


def markdown_rows(scenarios: dict[str, Any]) -> list[str]:
    rows = []
    if "joiner" in scenarios:
        j = scenarios["joiner"]
        f = j["feedback_per_s"]
        rows.append(f"| durable feedback with the live join (records/s) | join off "
                    f"{f['off']['median']:.0f} ({f['off']['min']:.0f}-{f['off']['max']:.0f}) | "
                    f"join on {f['on']['median']:.0f} ({f['on']['min']:.0f}-"
                    f"{f['on']['max']:.0f}) | {j['ratio_on_off']['median']:.2f} of off | "
                    f">= {j['target_ratio']:g} | {'yes' if j['met'] else 'no'} |")
        m = j["memory"]
        rows.append(f"| memory per pending prediction (bytes) | | "
                    f"{m['bytes_per_pending_prediction']:.0f} | {m['us_per_prediction']} µs "
                    f"per prediction, {m['us_per_label']} µs per label | | |")
    if "export" in scenarios:
        e = scenarios["export"]
        s = e["seconds"]
        rows.append(f"| data set export, {e['predictions']:,} predictions, half labelled (s) | "
                    f"hand-written DuckDB join {s['baseline']['median']:.1f} "
                    f"({s['baseline']['min']:.1f}-{s['baseline']['max']:.1f}) | "
                    f"{s['mlgate']['median']:.1f} ({s['mlgate']['min']:.1f}-"
                    f"{s['mlgate']['max']:.1f}) | {e['ratio_mlgate_baseline']['median']:.2f}x | "
                    f"<= {e['target_ratio']:g}x | {'yes' if e['met'] else 'no'} |")
    return rows


if __name__ == "__main__":
    import run as bench_run  # bench/run.py, beside this file

    sys.exit(bench_run.main([*sys.argv[1:]] if "--only" in sys.argv else
                            ["--only", "joiner,export", *sys.argv[1:]]))
