"""``make bench`` scenario ``overload``: a slow model at ten times what it can serve.

The model is ``bench/upstream.py --delay 0.05 --concurrency 1`` (50 ms a call, one call at
a time: 20 calls a second), behind ``mlgate up`` (``bench/mlgate_fixed.py``, every
feature on, one process) as a deployment whose admission bound is what that model really
serves: ``mlgate.io/max-in-flight-per-replica: 1``, ``mlgate.io/max-waiting: 0``.

Per run, interleaved like the other scenarios:

1. **unloaded** — one client, one request after the other (``wrk -c 1``): the model's
   throughput (its capacity) and the latency of an unloaded call;
2. **10x** — an open-loop load at ten times that capacity (``bench/openloop.c -s``,
   latencies from each request's due time): goodput (2xx a second), the admitted calls'
   p99, how fast the refused ones were answered, every status seen (anything but 200 and
   503 is a failure), and the gateway's RSS before and after;
3. **after** — the unloaded run again: the stack serves normally once the spike is over.

Reported as ratios against the unloaded run of the same run: goodput / capacity, admitted
p99 / unloaded p99, refused p99 / unloaded p99 (and in ms against the issue's 10 ms).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from types import ModuleType
from typing import Any

DELAY = 0.05
MANIFEST = """\
kind: ModelDeployment
id: slow
spec:
  image: file:///served/by/the/fixed/runtime
  predictor: odahu-ml-server
  minReplicas: 1
  maxReplicas: 1
  annotations:
    mlgate.io/max-in-flight-per-replica: "1"
    mlgate.io/max-waiting: "0"
"""
TARGETS = {"overload_goodput_ratio": 0.8, "overload_admitted_p99_ratio": 2.0,
           "overload_refused_p99_ms": 10.0, "overload_rss_growth_mb": 50.0}


def scenario_overload(args: Any, tmp: Path, run: ModuleType) -> dict[str, Any]:
    """``run``: bench/run.py (its processes, load generators and statistics)."""
    body = tmp / "overload-body.json"
    body.write_text('{"columns": ["a"], "data": [[1.0]]}')
    binary = run.openloop_binary(tmp)
    runs: list[dict[str, Any]] = []
    command = ""
    for i in range(args.runs):
        up_port = run.free_port()
        upstream = run.Service(
            "slow-upstream", [run.PY, str(run.BENCH / "upstream.py"), "--port", str(up_port),
                              "--delay", str(DELAY), "--concurrency", "1"],
            tmp / f"slow-upstream-{i}.log", ready_line="upstream ready on ").start()
        data = tmp / f"overload-{i}" / "mlgate"
        data.parent.mkdir(parents=True, exist_ok=True)
        manifest = data.parent / "slow.yaml"
        manifest.write_text(MANIFEST)
        mlgate = run.Service(
            "mlgate", [run.PY, str(run.BENCH / "mlgate_fixed.py"), "--upstream",
                       f"127.0.0.1:{up_port}", "--", "up", "--port", "0", "--data-dir",
                       str(data), "-f", str(manifest)], data.parent / "mlgate.log",
            ready_line="mlgate ready on ").start()
        try:
            url = mlgate.line.removeprefix("mlgate ready on ")
            token = _token(data)
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            invoke = f"{url}/model/slow/api/model/invoke"
            run.wait_http(invoke, headers, body.read_text())
            script = run.lua_script(tmp, "POST", body.read_text(), headers)
            unloaded = run.run_wrk(invoke, script, args.duration, 1)
            capacity = unloaded["rps"]
            idle_rss = mlgate.rss_mb()
            rate = 10 * capacity
            cmd = [str(binary), "-u", invoke, "-r", f"{rate:g}", "-d", f"{args.duration:g}",
                   "-w", "1", "-c", "64", "-b", str(body), "-s"]
            for k, v in headers.items():
                cmd += ["-H", f"{k}: {v}"]
            command = run.command_line([c if "Bearer" not in c else "Authorization: Bearer …"
                                        for c in cmd])
            loaded = _openloop(cmd, args.duration)
            peak_rss = mlgate.rss_mb()
            after = run.run_wrk(invoke, script, min(args.duration, 5.0), 1)
        finally:
            mlgate.stop()
            upstream.stop()
        statuses = {int(k): v for k, v in loaded["statuses"].items()}
        runs.append({
            "capacity_rps": capacity, "unloaded_p99_ms": unloaded["p99_ms"],
            "unloaded_p50_ms": unloaded["p50_ms"], "rate": rate, "statuses": statuses,
            "goodput_rps": statuses.get(200, 0) / args.duration,
            "admitted_p99_ms": loaded["p99_ms"], "refused_p50_ms": loaded["refused_p50_ms"],
            "refused_p99_ms": loaded["refused_p99_ms"],
            "other_5xx": sum(v for k, v in statuses.items() if k >= 500 and k != 503),
            "rss_idle_mb": idle_rss, "rss_peak_mb": peak_rss,
            "after_p99_ms": after["p99_ms"], "after_rps": after["rps"]})
        run.log(f"overload run {i + 1}: capacity {capacity:.1f}/s, at {rate:.0f}/s: "
                f"{statuses}, admitted p99 {loaded['p99_ms']:.1f} ms (unloaded "
                f"{unloaded['p99_ms']:.1f}), refused p99 {loaded['refused_p99_ms']:.2f} ms")
        time.sleep(0.5)

    def spread(key: str) -> dict[str, float]:
        return run.spread([r[key] for r in runs])

    goodput = run.spread([r["goodput_rps"] / r["capacity_rps"] for r in runs])
    admitted = run.spread([r["admitted_p99_ms"] / r["unloaded_p99_ms"] for r in runs])
    refused = run.spread([r["refused_p99_ms"] / r["unloaded_p99_ms"] for r in runs])
    after = run.spread([r["after_p99_ms"] / r["unloaded_p99_ms"] for r in runs])
    growth = run.spread([r["rss_peak_mb"] - r["rss_idle_mb"] for r in runs])
    met = (goodput["median"] >= TARGETS["overload_goodput_ratio"]
           and admitted["median"] <= TARGETS["overload_admitted_p99_ratio"]
           and spread("refused_p99_ms")["median"] <= TARGETS["overload_refused_p99_ms"]
           and growth["max"] <= TARGETS["overload_rss_growth_mb"]
           and all(r["other_5xx"] == 0 and set(r["statuses"]) <= {200, 503} for r in runs))
    return {"runs": runs, "delay_s": DELAY, "capacity_rps": spread("capacity_rps"),
            "goodput_ratio": goodput, "admitted_p99_ratio": admitted,
            "refused_p99_ratio": refused, "refused_p99_ms": spread("refused_p99_ms"),
            "refused_p50_ms": spread("refused_p50_ms"), "after_p99_ratio": after,
            "rss_growth_mb": growth, "unloaded_p99_ms": spread("unloaded_p99_ms"),
            "admitted_p99_ms": spread("admitted_p99_ms"), "targets": TARGETS, "met": met,
            "command": command}


def _token(data: Path) -> str:
    from deploy.config import load_settings
    from deploy.keys import mint_token

    settings = load_settings(None, env={}, overrides={"data_dir": str(data)})
    return mint_token(settings.auth, settings.data_path, roles=["data_scientist"],
                      subject="bench", ttl=3600)


def _openloop(cmd: list[str], duration: float) -> dict[str, Any]:
    import json
    import subprocess

    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"openloop failed: {proc.stdout} {proc.stderr}")
    return json.loads(proc.stdout)


def markdown_rows(s: dict[str, Any], fmt: Any) -> list[str]:
    if "overload" not in s:
        return []
    o = s["overload"]
    t = o["targets"]
    admitted_met = o["admitted_p99_ratio"]["median"] <= t["overload_admitted_p99_ratio"]
    statuses: dict[int, int] = {}
    for r in o["runs"]:
        for code, n in r["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n
    seen = ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items()))
    return [
        f"| overload (one gateway process): goodput at 10x capacity (2xx/s of what one slow "
        f"replica serves) | "
        f"capacity {fmt(o['capacity_rps'], 1)} req/s unloaded | "
        f"{statistics.median(r['goodput_rps'] for r in o['runs']):.1f} req/s | "
        f"{fmt(o['goodput_ratio'], 2)} of capacity | >= {t['overload_goodput_ratio']:g} | "
        f"{'yes' if o['goodput_ratio']['median'] >= t['overload_goodput_ratio'] else 'no'} |",
        f"| overload: admitted p99 (ms) | unloaded {fmt(o['unloaded_p99_ms'], 1)} | "
        f"{fmt(o['admitted_p99_ms'], 1)} | {fmt(o['admitted_p99_ratio'], 2)}x unloaded | "
        f"<= {t['overload_admitted_p99_ratio']:g}x | "
        f"{'yes' if admitted_met else 'no'} |",
        f"| overload: refused (503) p50 / p99 (ms) | | {fmt(o['refused_p50_ms'], 2)} / "
        f"{fmt(o['refused_p99_ms'], 2)} | p99 {fmt(o['refused_p99_ratio'], 3)}x unloaded p99 | "
        f"<= {t['overload_refused_p99_ms']:g} ms | "
        f"{'yes' if o['refused_p99_ms']['median'] <= t['overload_refused_p99_ms'] else 'no'} |",
        f"| overload: statuses; RSS growth (MB); p99 after (x unloaded) | | {seen} | "
        f"{fmt(o['rss_growth_mb'], 1)} MB; {fmt(o['after_p99_ratio'], 2)}x | only 200/503; "
        f"<= +{t['overload_rss_growth_mb']:g} MB | {'yes' if o['met'] else 'no'} |",
    ]
