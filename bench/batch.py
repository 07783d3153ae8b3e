"""Batch inference: rows/s of an inference job through mlgate against the model in-process.

    .venv/bin/python bench/batch.py [--runs 3] [--rows 400000] [--replicas 2]
                                    [--concurrency 4] [--batch-size 1024]

The same rows (the wine data repeated, CSV objects in a local folder) are scored, run by
run interleaved, two ways:

* **in-process** (the limit): ``mlflow.pyfunc`` loads the wine model in this process and
  predicts the rows in batches of ``--batch-size``, on DataFrames built beforehand (only
  ``predict`` is timed: reading and parsing the CSV are not counted); for context also
  **a script** doing the whole job in this process (pandas ``read_csv`` of each object,
  ``predict`` per batch, ``to_csv`` of the predictions), which the ratio does not use;
* **mlgate**: ``mlgate up`` with the model as a deployment of ``--replicas`` replicas, and
  an InferenceJob (``concurrency``, ``batchSize``) over the folder, timed from
  ``POST /api/v1/batch/job`` until the API says it Succeeded — everything a user waits
  for: the runner process starting, reading and parsing the objects, every call through
  the gateway (JWT, Request-ID, records to the spool), writing the outputs.

The figure is the ratio of the two rates per run (goal: >= 0.5). Also part of
``make bench`` (``bench/run.py --only batch``). The default batch size, 1000, stays below
the predictor's threshold for moving a prediction off its event loop (1,000 rows).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WINE = ROOT / "examples" / "wine" / "models" / "wine-v1"
DATA = ROOT / "examples" / "wine" / "wine-quality.csv"
TARGET_RATIO = 0.5
OBJECTS = 4


def log(message: str) -> None:
    print(f"[bench batch {time.strftime('%H:%M:%S')}] {message}", flush=True)


def write_inputs(folder: Path, rows: int) -> tuple[list[str], list[list[float]]]:
    """``OBJECTS`` CSV objects holding ``rows`` wine rows; the rows as floats for pyfunc."""
    with open(DATA, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)[:-1]
        wine = [r[:-1] for r in reader]
    folder.mkdir(parents=True, exist_ok=True)
    per = -(-rows // OBJECTS)
    values = []
    for k in range(OBJECTS):
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for i in range(k * per, min(rows, (k + 1) * per)):
            writer.writerow(wine[i % len(wine)])
            values.append([float(v) for v in wine[i % len(wine)]])
        (folder / f"part-{k}.csv").write_text(out.getvalue())
    return header, values


def in_process(header: list[str], values: list[list[float]], batch_size: int) -> float:
    """Rows/s of pyfunc.predict on the same rows in batches (frames built beforehand)."""
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(str(WINE))
    frames = [pd.DataFrame(values[i:i + batch_size], columns=header)
              for i in range(0, len(values), batch_size)]
    model.predict(frames[0])  # warm
    started = time.perf_counter()
    for frame in frames:
        model.predict(frame)
    return len(values) / (time.perf_counter() - started)


def in_process_script(folder: Path, batch_size: int) -> float:
    """Rows/s of reading, predicting and writing the objects with pandas in this process."""
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(str(WINE))
    rows = 0
    started = time.perf_counter()
    for path in sorted(folder.glob("*.csv")):
        frame = pd.read_csv(path)
        predictions = [model.predict(frame.iloc[i:i + batch_size])
                       for i in range(0, len(frame), batch_size)]
        flat = [float(v) for p in predictions for v in p]
        pd.DataFrame({"row": range(len(flat)), "quality": flat}).to_csv(io.StringIO(),
                                                                       index=False)
        rows += len(frame)
    return rows / (time.perf_counter() - started)


class Mlgate:
    def __init__(self, tmp: Path, replicas: int) -> None:
        self.data_dir = tmp / "mlgate"
        manifest = tmp / "bench-batch.yaml"
        manifest.write_text(json.dumps({"kind": "ModelDeployment", "id": "bench-batch", "spec": {
            "image": f"file://{WINE}", "predictor": "odahu-ml-server",
            "minReplicas": replicas, "maxReplicas": replicas}}))
        env = {**os.environ, "MLGATE_BATCH_LOCAL_ROOTS": str(tmp)}
        self.log = open(tmp / "mlgate.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "up", "-f", str(manifest), "--port", "0",
             "--data-dir", str(self.data_dir)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=self.log, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("mlgate ready on "):
            raise SystemExit(f"mlgate did not start: {(tmp / 'mlgate.log').read_text()[-2000:]}")
        self.url = line.split()[-1]
        from deploy.config import load_settings
        from deploy.keys import mint_token

        settings = load_settings(None, overrides={"data_dir": str(self.data_dir)})
        token = mint_token(settings.auth, settings.data_path, roles=["admin"],
                           subject="bench", ttl=3600)
        self.http = httpx.Client(base_url=self.url, timeout=60,
                                 headers={"Authorization": f"Bearer {token}"})
        deadline = time.monotonic() + 180
        while self.http.get("/api/v1/model/deployment/bench-batch").json()["status"][
                "state"] != "Ready" or self.available() < replicas:
            if time.monotonic() > deadline:
                raise SystemExit("the bench deployment did not become Ready")
            time.sleep(0.2)

    def available(self) -> int:
        return self.http.get("/api/v1/model/deployment/bench-batch").json()["status"][
            "availableReplicas"]

    def job(self, job_id: str, source: Path, target: Path, concurrency: int,
            batch_size: int, parallelism: int = 1) -> dict[str, Any]:
        started = time.perf_counter()
        resp = self.http.post("/api/v1/batch/job", json={"kind": "InferenceJob", "id": job_id,
                                                         "spec": {
            "deployment": "bench-batch", "input": f"{source}/", "output": f"{target}/",
            "format": "csv", "batchSize": batch_size, "concurrency": concurrency,
            "parallelism": parallelism}})
        resp.raise_for_status()
        while True:
            status = self.http.get(f"/api/v1/batch/job/{job_id}").json()["status"]
            if status["state"] in ("Succeeded", "SucceededWithErrors", "Failed"):
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        if status["state"] != "Succeeded":
            raise SystemExit(f"the bench job ended {status['state']}: {status.get('reason')}")
        return {"seconds": seconds, "rows": status["rowsDone"],
                "rows_per_s": status["rowsDone"] / seconds}

    def stop(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def scenario_batch(runs: int, rows: int, replicas: int, concurrency: int, batch_size: int,
                   parallelism: int, tmp: Path) -> dict[str, Any]:
    header, values = write_inputs(tmp / "in", rows)
    stack = Mlgate(tmp, replicas)
    limit, script, job, ratios = [], [], [], []
    try:
        stack.job("bench-warm", tmp / "in", tmp / "out-warm", concurrency, batch_size,
                  parallelism)
        for i in range(runs):
            limit.append(in_process(header, values, batch_size))
            script.append(in_process_script(tmp / "in", batch_size))
            job.append(stack.job(f"bench-{i}", tmp / "in", tmp / f"out-{i}", concurrency,
                                 batch_size, parallelism)["rows_per_s"])
            ratios.append(job[-1] / limit[-1])
            log(f"run {i + 1}: in-process {limit[-1]:,.0f} rows/s (script "
                f"{script[-1]:,.0f}), mlgate job {job[-1]:,.0f} rows/s, ratio {ratios[-1]:.2f}")
    finally:
        stack.stop()
    return {
        "command": f"bench/batch.py --runs {runs} --rows {rows} --replicas {replicas} "
                   f"--concurrency {concurrency} --batch-size {batch_size} "
                   f"--parallelism {parallelism}",
        "rows": rows, "replicas": replicas, "concurrency": concurrency,
        "parallelism": parallelism,
        "batch_size": batch_size,
        "rows_per_s": {"in_process": spread(limit), "in_process_script": spread(script),
                       "mlgate": spread(job)},
        "ratio": spread(ratios),
        "ratio_to_script": spread([j / s for j, s in zip(job, script, strict=True)]),
        "target": TARGET_RATIO,
        "met": statistics.median(ratios) >= TARGET_RATIO,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=400_000)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mlgate-bench-batch-") as tmp:
        result = scenario_batch(args.runs, args.rows, args.replicas, args.concurrency,
                                args.batch_size, args.parallelism, Path(tmp))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
