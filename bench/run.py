"""``make bench``: the gateway, the predictor and feedback against their baselines, in one run.

    .venv/bin/python bench/run.py [--runs 3] [--duration 10] [--workers 2]
                                  [--memory-requests 1000000] [--only throughput,latency,...]

Starts everything on 127.0.0.1, measures, stops everything, and writes
``bench/results.json``, ``bench/RESULTS.md`` and ``bench/results.png``. Each figure
is measured ``--runs`` times, the contenders of a scenario interleaved run by run
(so a busy neighbour slows all of them alike), and reported as min / median / max;
a ratio is computed per run against the baseline of the same run.

Scenarios (``--only`` picks some):

* ``throughput`` — saturated ``POST /model/<id>/api/model/invoke`` (wrk, closed loop)
  to ``bench/upstream.py`` (raw asyncio fixed-JSON server): directly, through nginx
  (plain reverse proxy, keep-alive upstream), through a plain aiohttp pass-through
  (``bench/aiohttp_proxy.py``, no features), through a pass-through on mlgate's own
  server (``bench/protocol_proxy.py``: the server floor) and through mlgate
  with everything on (JWT, Request-ID, logging to the spool, and whatever else
  ``mlgate up`` does by default). Also the CPU time each proxy spends per request.
* ``latency`` — the same four at a fixed 1,000 requests/s, open loop
  (``bench/openloop.c``): p50 and p99 added over direct.
* ``predictor`` — mlgate's predictor vs. ``mlflow models serve`` on the wine model,
  ``/invocations``, same body, same wrk, same concurrency.
* ``feedback`` — durable feedback records/s through ``POST /api/v1/feedback``; the
  records mlgate reports spooled (fsynced) are checked against the answers.
* ``memory`` — gateway RSS after ``--memory-requests`` requests vs. after warm-up.
* ``batch`` — rows/s of an inference job over CSV objects through mlgate vs. the wine
  model's ``pyfunc.predict`` in this process on the same rows (``bench/batch.py``).
* ``joiner`` — durable feedback/s with the live join on vs. off, and bytes per pending
  prediction; ``export`` — the data set export vs. a hand-written DuckDB join
  (``bench/quality.py``). Just these two, quickly: ``BENCH_ARGS="--only joiner,export
  --runs 1 --duration 3 --export-predictions 200000" make bench``.
* ``real_model`` — the wine model's predictor (``python -m predictor``) behind nginx and
  behind mlgate (every feature on), the same closed loop: the CPU each proxy spends per
  request (the predictor's own CPU not counted).
* ``cold_start`` — ``mlgate up`` with the local runtime: a ``minReplicas: 0`` wine
  deployment at zero replicas, one request timed from send to answer (the replica is
  forked from the predictor zygote); and where a replica's start goes (import, load,
  first prediction) fresh vs. forked (``bench/predictor_phases.py``).
* ``overload`` — a slow model (50 ms a call, one at a time) at ten times what it can
  serve, open loop: goodput, admitted p99 and the refusals' latency as ratios against the
  unloaded run, statuses, RSS growth, and service after the spike (``bench/overload.py``).
  Just this one: ``BENCH_ARGS="--only overload --runs 1 --duration 5" make bench``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PY = sys.executable
sys.path.insert(0, str(ROOT))
sys.path.append(str(BENCH))  # bench/scaling.py; after ROOT: bench/storage.py is no package
from tests.conftest import SEED_COLUMNS, SEED_ROW  # noqa: E402

sys.path.insert(0, str(BENCH))
import overload as overload_bench  # noqa: E402  (bench/overload.py)
import quality as quality_bench  # noqa: E402  (bench/quality.py)

WINE = ROOT / "examples" / "wine" / "models" / "wine-v1"
INVOKE_BODY = json.dumps({"columns": SEED_COLUMNS, "data": [SEED_ROW]})
INVOCATIONS_BODY = json.dumps({"dataframe_split": {"columns": SEED_COLUMNS, "data": [SEED_ROW]}})
FEEDBACK_BODY = json.dumps({"quality": 6, "comment": "close enough"})
DEPLOYMENT = "fast"
INVOKE_PATH = f"/model/{DEPLOYMENT}/api/model/invoke"
TARGETS = {  # issue 21's goals where it sets them
    "throughput_ratio": 0.5,
    "cpu_ratio": 0.5,
    "added_p50_ms": 0.15,
    "added_p99_ms": 0.5,
    "predictor_ratio": 10.0,
    "feedback_rps": 30000.0,
    "memory_growth_mb": 50.0,
    "batch_ratio": 0.5,
    "cold_start_s": 0.5,
    **overload_bench.TARGETS,  # issue 22's
}

NGINX_CONF = """\
worker_processes {workers};
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {tmp}/nginx-access.log;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    upstream model {{
        server {upstream};
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location /model/fast/ {{
            proxy_pass http://model/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location / {{
            proxy_pass http://model;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""

MANIFEST = f"""\
kind: ModelDeployment
id: {DEPLOYMENT}
spec:
  image: file://{WINE}
  predictor: odahu-ml-server
  minReplicas: 1
  maxReplicas: 1
"""


# -- processes -------------------------------------------------------------------------------------

def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """A process of the benchmark: started in its own session, stopped with its children."""

    def __init__(self, name: str, cmd: list[str], log: Path, env: dict[str, str] | None = None,
                 ready_line: str | None = None) -> None:
        self.name = name
        self.cmd = cmd
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.ready_line = ready_line
        self.proc: subprocess.Popen[str] | None = None
        self.line = ""

    def start(self, timeout: float = 180) -> Service:
        self._log = open(self.log, "w")
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, text=True,
                                     stdout=subprocess.PIPE if self.ready_line else self._log,
                                     stderr=self._log, start_new_session=True)
        if self.ready_line:
            deadline = time.monotonic() + timeout
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith(self.ready_line):
                    self.line = line.strip()
                    break
                if time.monotonic() > deadline:
                    break
            if not self.line:
                self.stop()
                raise RuntimeError(f"{self.name} did not start: {self.log.read_text()[-2000:]}")
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def processes(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        total = 0.0
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                t = p.cpu_times()
                total += t.user + t.system
        return total

    def rss_mb(self) -> float:
        total = 0
        for p in self.processes():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += p.memory_info().rss
        return total / 2**20

    def stop(self, timeout: float = 60) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        return self.proc.returncode


def wait_http(url: str, headers: dict[str, str] | None = None, body: str | None = None,
              timeout: float = 180) -> None:
    import httpx
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            resp = (httpx.post(url, content=body, headers=headers, timeout=5) if body is not None
                    else httpx.get(url, headers=headers, timeout=5))
            if resp.status_code == 200:
                return
            last = f"{resp.status_code} {resp.text[:200]}"
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready: {last}")


class Group:
    """Processes sharing one port (``SO_REUSEPORT``), measured together."""

    def __init__(self, services: list[Service]) -> None:
        self.services = services

    def cpu_seconds(self) -> float:
        return sum(s.cpu_seconds() for s in self.services)


class Stack:
    """Upstream, nginx, a plain aiohttp proxy and mlgate, all on 127.0.0.1, for the gateway
    scenarios."""

    def __init__(self, tmp: Path, workers: int) -> None:
        self.tmp = tmp
        self.workers = workers
        self.services: list[Service] = []

    def __enter__(self) -> Stack:
        try:
            return self._start_all()
        except BaseException:
            self.__exit__()
            raise

    def _start_all(self) -> Stack:
        up_port, self.nginx_port, aio_port = free_port(), free_port(), free_port()
        self.upstream = self._start(Service(
            "upstream", [PY, str(BENCH / "upstream.py"), "--port", str(up_port)],
            self.tmp / "upstream.log", ready_line="upstream ready on "))
        self.direct_url = f"http://127.0.0.1:{up_port}"
        (self.tmp / "nginx.conf").write_text(NGINX_CONF.format(
            workers=self.workers, tmp=self.tmp, upstream=f"127.0.0.1:{up_port}",
            port=self.nginx_port))
        self.nginx = self._start(Service(
            "nginx", [nginx_binary(), "-c", str(self.tmp / "nginx.conf"), "-p", str(self.tmp),
                      "-e", str(self.tmp / "nginx-error.log")], self.tmp / "nginx.log"))
        self.nginx_url = f"http://127.0.0.1:{self.nginx_port}"
        wait_http(self.nginx_url + "/healthcheck")
        self.aiohttp = Group([self._start(Service(
            f"aiohttp-{i}", [PY, str(BENCH / "aiohttp_proxy.py"), "--upstream",
                             f"127.0.0.1:{up_port}", "--port", str(aio_port), "--reuse-port"],
            self.tmp / f"aiohttp-{i}.log", ready_line="proxy ready on "))
            for i in range(self.workers)])
        self.aiohttp_url = f"http://127.0.0.1:{aio_port}"
        proto_port = free_port()
        self.protocol = Group([self._start(Service(
            f"protocol-{i}", [PY, str(BENCH / "protocol_proxy.py"), "--upstream",
                              f"127.0.0.1:{up_port}", "--port", str(proto_port), "--reuse-port"],
            self.tmp / f"protocol-{i}.log", ready_line="proxy ready on "))
            for i in range(self.workers)])
        self.protocol_url = f"http://127.0.0.1:{proto_port}"
        self.mlgate, self.mlgate_url, self.token = start_mlgate(
            self.tmp / "mlgate", f"127.0.0.1:{up_port}", self.workers)
        self.services.append(self.mlgate)
        self.auth = {"Authorization": f"Bearer {self.token}"}
        wait_http(self.mlgate_url + INVOKE_PATH, self.auth | {"Content-Type": "application/json"},
                  INVOKE_BODY)
        return self

    def _start(self, service: Service) -> Service:
        self.services.append(service)
        return service.start()

    def __exit__(self, *exc: object) -> None:
        for service in reversed(self.services):
            service.stop()
        self.services.clear()


def start_mlgate(data_dir: Path, upstream: str, workers: int,
                 env: dict[str, str] | None = None) -> tuple[Service, str, str]:
    """``mlgate up`` (replicas = the fixed upstream) with the defaults a user gets (``env``:
    ``MLGATE_*`` changes to them)."""
    from deploy.config import load_settings
    from deploy.keys import mint_token

    data_dir.mkdir(parents=True, exist_ok=True)
    manifest = data_dir.parent / "fast.yaml"
    manifest.write_text(MANIFEST)
    cmd = [PY, str(BENCH / "mlgate_fixed.py"), "--upstream", upstream, "--", "up",
           "--port", "0", "--data-dir", str(data_dir), "-f", str(manifest)]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    service = Service("mlgate", cmd, data_dir.parent / f"{data_dir.name}.log", env=env,
                      ready_line="mlgate ready on ").start()
    url = service.line.removeprefix("mlgate ready on ")
    settings = load_settings(None, env={}, overrides={"data_dir": str(data_dir)})
    token = mint_token(settings.auth, settings.data_path, roles=["data_scientist"],
                       subject="bench", ttl=3 * 3600)
    return service, url, token


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                      else None)
    if found is None:
        raise SystemExit("nginx is not installed: run `make bench` (it installs it) or "
                         "apt-get install nginx-light")
    return found


# -- load generators -------------------------------------------------------------------------------

def lua_script(tmp: Path, method: str, body: str, headers: dict[str, str]) -> Path:
    lines = [f"wrk.method = {json.dumps(method)}", f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path = tmp / f"wrk-{abs(hash((method, body, tuple(headers.items()))))}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def wrk_command(url: str, script: Path, duration: float, connections: int) -> list[str]:
    return ["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration:g}s", "--latency",
            "-s", str(script), url]


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict[str, float]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result = {"rps": rps, "requests": total,
              "non_2xx": int(non2xx.group(1)) if non2xx else 0,
              "socket_errors": sum(map(int, errors.groups())) if errors else 0}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        if m:
            result[f"p{pct}_ms"] = _ms(m.group(1))
    return result


def run_wrk(url: str, script: Path, duration: float, connections: int,
            watch: Service | Group | None = None) -> dict[str, float]:
    cmd = wrk_command(url, script, duration, connections)
    cpu0 = watch.cpu_seconds() if watch else 0.0
    out = subprocess.run(cmd, capture_output=True, text=True, check=True,
                         timeout=duration + 60).stdout
    result = parse_wrk(out)
    if result["non_2xx"] or result["socket_errors"]:
        raise RuntimeError(f"errors against {url}:\n{out}")
    if watch is not None:
        result["cpu_us_per_request"] = (watch.cpu_seconds() - cpu0) / result["requests"] * 1e6
    return result


def openloop_binary(tmp: Path) -> Path:
    out = tmp / "openloop"
    subprocess.run(["gcc", "-O2", "-o", str(out), str(BENCH / "openloop.c")], check=True)
    return out


def run_openloop(binary: Path, url: str, rate: float, duration: float, body_file: Path,
                 headers: dict[str, str]) -> dict[str, float]:
    cmd = [str(binary), "-u", url, "-r", f"{rate:g}", "-d", f"{duration:g}", "-w", "2",
           "-c", "32", "-b", str(body_file)]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"openloop against {url} failed: {proc.stdout} {proc.stderr}")
    return json.loads(proc.stdout)


# -- statistics ------------------------------------------------------------------------------------

def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "runs": values}


def command_line(cmd: list[str]) -> str:
    return " ".join(c if re.fullmatch(r"[\w./:=,@%+-]+", c) else repr(c) for c in cmd)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- scenarios -------------------------------------------------------------------------------------

def scenario_gateway(stack: Stack, args: argparse.Namespace, tmp: Path,
                     do_throughput: bool, do_latency: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    targets = {"direct": (stack.direct_url, {}, None),
               "nginx": (stack.nginx_url, {}, stack.nginx),
               "aiohttp": (stack.aiohttp_url, {}, stack.aiohttp),
               "protocol": (stack.protocol_url, {}, stack.protocol),
               "mlgate": (stack.mlgate_url, stack.auth, stack.mlgate)}
    json_header = {"Content-Type": "application/json"}
    scripts = {name: lua_script(tmp, "POST", INVOKE_BODY, json_header | hdrs)
               for name, (_, hdrs, _) in targets.items()}
    for name, (url, _, _) in targets.items():  # warm-up: connections, caches, JIT-free Python
        run_wrk(url + INVOKE_PATH, scripts[name], 3, args.connections)
    if do_throughput:
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for i in range(args.runs):
            for name, (url, _, watch) in targets.items():
                runs[name].append(run_wrk(url + INVOKE_PATH, scripts[name], args.duration,
                                          args.connections, watch))
                log(f"throughput run {i + 1} {name}: {runs[name][-1]['rps']:.0f} req/s")
        ratios = [m["rps"] / n["rps"] for m, n in zip(runs["mlgate"], runs["nginx"], strict=True)]
        floor = [m["rps"] / a["rps"] for m, a in zip(runs["mlgate"], runs["aiohttp"], strict=True)]
        server = [m["rps"] / p["rps"]
                  for m, p in zip(runs["mlgate"], runs["protocol"], strict=True)]
        out["throughput"] = {
            "command": command_line(wrk_command(stack.mlgate_url + INVOKE_PATH,
                                                Path("invoke.lua"), args.duration,
                                                args.connections)),
            "upstream": "bench/upstream.py: raw asyncio (uvloop) server, fixed JSON answer",
            "aiohttp": "bench/aiohttp_proxy.py: plain aiohttp pass-through, as many processes "
                       "as mlgate workers (the framework mlgate is built on, no features)",
            "rps": {name: spread([r["rps"] for r in rs]) for name, rs in runs.items()},
            "cpu_us_per_request": {name: spread([r["cpu_us_per_request"] for r in rs])
                                   for name, rs in runs.items() if name != "direct"},
            "ratio_mlgate_nginx": spread(ratios),
            "ratio_mlgate_aiohttp": spread(floor),
            "protocol": "bench/protocol_proxy.py: a pass-through on mlgate's own server and "
                        "upstream client, no filter at all, as many processes as mlgate",
            "ratio_mlgate_protocol": spread(server),
            "cpu_ratio_nginx_mlgate": spread([
                n["cpu_us_per_request"] / m["cpu_us_per_request"]
                for m, n in zip(runs["mlgate"], runs["nginx"], strict=True)]),
            "target": TARGETS["throughput_ratio"],
            "met": statistics.median(ratios) >= TARGETS["throughput_ratio"],
            "cpu_target": TARGETS["cpu_ratio"],
        }
    if do_latency:
        binary = openloop_binary(tmp)
        body = tmp / "invoke.json"
        body.write_text(INVOKE_BODY)
        lat: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for i in range(args.runs):
            for name, (url, hdrs, _) in targets.items():
                lat[name].append(run_openloop(binary, url + INVOKE_PATH, args.rate,
                                              args.duration, body, json_header | hdrs))
                log(f"latency run {i + 1} {name}: p50 {lat[name][-1]['p50_ms']:.3f} ms "
                    f"p99 {lat[name][-1]['p99_ms']:.3f} ms")
        added = {}
        for name in ("nginx", "aiohttp", "protocol", "mlgate"):
            added[name] = {
                q: spread([r[f"{q}_ms"] - d[f"{q}_ms"]
                           for r, d in zip(lat[name], lat["direct"], strict=True)])
                for q in ("p50", "p99")}
        out["latency"] = {
            "command": command_line(["bench/openloop", "-u", stack.mlgate_url + INVOKE_PATH,
                                     "-r", f"{args.rate:g}", "-d", f"{args.duration:g}", "-w",
                                     "2", "-c", "32", "-b", "invoke.json", "-H",
                                     "Authorization: Bearer ..."]),
            "rate": args.rate,
            "absolute_ms": {name: {q: spread([r[f"{q}_ms"] for r in rs])
                                   for q in ("p50", "p99", "p999")} for name, rs in lat.items()},
            "added_ms": added,
            "target_added_p50_ms": TARGETS["added_p50_ms"],
            "target_added_p99_ms": TARGETS["added_p99_ms"],
            "met": (added["mlgate"]["p50"]["median"] <= TARGETS["added_p50_ms"]
                    and added["mlgate"]["p99"]["median"] <= TARGETS["added_p99_ms"]),
        }
    return out


def scenario_feedback(stack: Stack, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    headers = stack.auth | {"Content-Type": "application/json", "model-name": "fast",
                            "model-version": "1", "request-id": "bench-feedback-1"}
    script = lua_script(tmp, "POST", FEEDBACK_BODY, headers)
    url = stack.mlgate_url + "/api/v1/feedback"
    run_wrk(url, script, 2, args.connections)
    runs = []
    for i in range(args.runs):
        runs.append(run_wrk(url, script, args.duration, args.connections, stack.mlgate))
        log(f"feedback run {i + 1}: {runs[-1]['rps']:.0f} records/s")
    rps = spread([r["rps"] for r in runs])
    return {
        "command": command_line(wrk_command(url, Path("feedback.lua"), args.duration,
                                            args.connections)),
        "records_per_s": rps,
        "answered_200": sum(int(r["requests"]) for r in runs),
        "latency_p50_ms": spread([r["p50_ms"] for r in runs]),
        "latency_p99_ms": spread([r["p99_ms"] for r in runs]),
        "target": TARGETS["feedback_rps"],
        "met": rps["median"] >= TARGETS["feedback_rps"],
    }


def stored_feedback(data_dir: Path) -> int:
    """Feedback records on disk after mlgate stopped: uploaded to the local bucket, or still
    in the spool (both durable)."""
    count = 0
    for path in [*(data_dir / "storage").rglob("*.json"), *(data_dir / "spool").glob("*.seg")]:
        if "feedback" in path.parts or "~feedback~" in path.name:
            count += path.read_bytes().count(b"\n")
    return count


def scenario_memory(stack: Stack, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    script = lua_script(tmp, "POST", INVOKE_BODY,
                        stack.auth | {"Content-Type": "application/json"})
    url = stack.mlgate_url + INVOKE_PATH
    warm = 0
    while warm < args.memory_warmup:
        warm += int(run_wrk(url, script, 5, args.connections)["requests"])
    baseline = stack.mlgate.rss_mb()
    samples = [(0, baseline)]
    done = 0
    chunk = max(5.0, min(30.0, args.duration * 2))
    while done < args.memory_requests:
        done += int(run_wrk(url, script, chunk, args.connections)["requests"])
        samples.append((done, stack.mlgate.rss_mb()))
        log(f"memory: {done} requests, RSS {samples[-1][1]:.1f} MB")
    growth = samples[-1][1] - baseline
    return {
        "command": f"wrk in {chunk:g}s chunks until {args.memory_requests} requests; RSS of "
                   "mlgate and its worker processes (psutil) after each",
        "warmup_requests": warm,
        "requests": done,
        "rss_after_warmup_mb": baseline,
        "rss_after_mb": samples[-1][1],
        "rss_max_mb": max(s[1] for s in samples),
        "growth_mb": growth,
        "samples": samples,
        "target_growth_mb": TARGETS["memory_growth_mb"],
        "met": growth <= TARGETS["memory_growth_mb"],
    }


def scenario_predictor(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    mine_port, mlflow_port = free_port(), free_port()
    mine = Service("predictor", [PY, "-m", "predictor", "--model-uri", str(WINE), "--port",
                                 str(mine_port), "--log-level", "warning"], tmp / "predictor.log")
    mlflow_bin = str(Path(PY).parent / "mlflow")
    mlflow_cmd = [mlflow_bin, "models", "serve", "-m", str(WINE), "--env-manager", "local",
                  "-h", "127.0.0.1", "-p", str(mlflow_port)]
    # mlflow runs `uvicorn` from PATH: the virtualenv's, as an activated venv would
    theirs = Service("mlflow", mlflow_cmd, tmp / "mlflow.log",
                     env={"PATH": f"{Path(PY).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
    headers = {"Content-Type": "application/json"}
    script = lua_script(tmp, "POST", INVOCATIONS_BODY, headers)
    try:
        mine.start()
        theirs.start()
        wait_http(f"http://127.0.0.1:{mine_port}/invocations", headers, INVOCATIONS_BODY)
        wait_http(f"http://127.0.0.1:{mlflow_port}/invocations", headers, INVOCATIONS_BODY)
        targets = {"mlflow": f"http://127.0.0.1:{mlflow_port}/invocations",
                   "mlgate": f"http://127.0.0.1:{mine_port}/invocations"}
        for url in targets.values():
            run_wrk(url, script, 2, args.predictor_connections)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for i in range(args.runs):
            for name, url in targets.items():
                runs[name].append(run_wrk(url, script, args.duration,
                                          args.predictor_connections))
                log(f"predictor run {i + 1} {name}: {runs[name][-1]['rps']:.0f} req/s")
    finally:
        mine.stop()
        theirs.stop()
    ratios = [m["rps"] / f["rps"] for m, f in zip(runs["mlgate"], runs["mlflow"], strict=True)]
    return {
        "command": command_line(wrk_command("http://127.0.0.1:PORT/invocations",
                                            Path("invocations.lua"), args.duration,
                                            args.predictor_connections)),
        "servers": {"mlgate": f"python -m predictor --model-uri {WINE.relative_to(ROOT)}",
                    "mlflow": f"mlflow models serve -m {WINE.relative_to(ROOT)} "
                              "--env-manager local"},
        "rps": {name: spread([r["rps"] for r in rs]) for name, rs in runs.items()},
        "p50_ms": {name: spread([r["p50_ms"] for r in rs]) for name, rs in runs.items()},
        "p99_ms": {name: spread([r["p99_ms"] for r in rs]) for name, rs in runs.items()},
        "ratio_mlgate_mlflow": spread(ratios),
        "target": TARGETS["predictor_ratio"],
        "met": statistics.median(ratios) >= TARGETS["predictor_ratio"],
    }


def scenario_real_model(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """nginx and mlgate in front of the wine model's predictor: proxy CPU per request."""
    work = tmp / "real"
    work.mkdir(exist_ok=True)
    model_port, nginx_port = free_port(), free_port()
    services: list[Service] = []

    def start(service: Service) -> Service:
        services.append(service)
        return service.start()

    try:
        start(Service("predictor", [PY, "-m", "predictor", "--model-uri", str(WINE), "--port",
                                    str(model_port), "--log-level", "warning"],
                      work / "predictor.log"))
        wait_http(f"http://127.0.0.1:{model_port}/healthcheck")
        (work / "nginx.conf").write_text(NGINX_CONF.format(
            workers=args.workers, tmp=work, upstream=f"127.0.0.1:{model_port}",
            port=nginx_port))
        nginx = start(Service("nginx", [nginx_binary(), "-c", str(work / "nginx.conf"), "-p",
                                        str(work), "-e", str(work / "nginx-error.log")],
                              work / "nginx.log"))
        mlgate, mlgate_url, token = start_mlgate(work / "mlgate", f"127.0.0.1:{model_port}",
                                                 args.workers)
        services.append(mlgate)
        json_header = {"Content-Type": "application/json"}
        targets = {"nginx": (f"http://127.0.0.1:{nginx_port}", {}, nginx),
                   "mlgate": (mlgate_url, {"Authorization": f"Bearer {token}"}, mlgate)}
        scripts = {name: lua_script(work, "POST", INVOKE_BODY, json_header | hdrs)
                   for name, (_, hdrs, _) in targets.items()}
        for name, (url, hdrs, _) in targets.items():
            wait_http(url + INVOKE_PATH, json_header | hdrs, INVOKE_BODY)
            run_wrk(url + INVOKE_PATH, scripts[name], 2, args.predictor_connections)
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for i in range(args.runs):
            for name, (url, _, watch) in targets.items():
                runs[name].append(run_wrk(url + INVOKE_PATH, scripts[name], args.duration,
                                          args.predictor_connections, watch))
                log(f"real model run {i + 1} {name}: {runs[name][-1]['rps']:.0f} req/s, "
                    f"{runs[name][-1]['cpu_us_per_request']:.0f} µs CPU/request")
    finally:
        for service in reversed(services):
            service.stop()
    ratios = [n["cpu_us_per_request"] / m["cpu_us_per_request"]
              for m, n in zip(runs["mlgate"], runs["nginx"], strict=True)]
    return {
        "command": command_line(wrk_command("http://127.0.0.1:PORT" + INVOKE_PATH,
                                            Path("invoke.lua"), args.duration,
                                            args.predictor_connections)),
        "upstream": f"python -m predictor --model-uri {WINE.relative_to(ROOT)}",
        "rps": {name: spread([r["rps"] for r in rs]) for name, rs in runs.items()},
        "cpu_us_per_request": {name: spread([r["cpu_us_per_request"] for r in rs])
                               for name, rs in runs.items()},
        "cpu_ratio_nginx_mlgate": spread(ratios),
        "target": TARGETS["cpu_ratio"],
        "met": statistics.median(ratios) >= TARGETS["cpu_ratio"],
    }


def scenario_cold_start(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """First answer from zero replicas through ``mlgate up``, and the start's phases."""
    import asyncio

    import scaling  # bench/scaling.py: the same cold-start measurement

    from tests.conftest import MlgateProcess

    stack = MlgateProcess([], tmp / "cold", env={"MLGATE_AUTOSCALER_INTERVAL": "0.1",
                                                 "MLGATE_LOG_LEVEL": "warning"})

    async def measure() -> list[float]:
        import aiohttp

        async with aiohttp.ClientSession(base_url=stack.url, headers=stack.headers,
                                         timeout=aiohttp.ClientTimeout(total=300)) as session:
            return await scaling.cold_starts(session, args.runs * 2)

    try:
        stack.start()
        times = asyncio.run(measure())
    finally:
        stack.stop()
    for i, seconds in enumerate(times):
        log(f"cold start run {i + 1}: {seconds:.3f} s")
    phases = json.loads(subprocess.run(
        [PY, str(BENCH / "predictor_phases.py"), str(WINE)], capture_output=True, text=True,
        check=True, timeout=600).stdout.strip().splitlines()[-1])
    first = spread(times)
    return {
        "command": "bench/scaling.py cold_starts through mlgate up (local runtime, "
                   f"{args.runs * 2} runs); bench/predictor_phases.py {WINE.relative_to(ROOT)}",
        "seconds": first,
        "phases": phases,
        "target": TARGETS["cold_start_s"],
        "met": first["median"] <= TARGETS["cold_start_s"],
    }


# -- report ----------------------------------------------------------------------------------------

def fmt(s: dict[str, float], digits: int = 0, unit: str = "") -> str:
    f = f"{{:.{digits}f}}"
    return (f"{f.format(s['median'])}{unit} ({f.format(s['min'])}-{f.format(s['max'])})")


def markdown(results: dict[str, Any]) -> str:
    s = results["scenarios"]
    rows = ["| scenario | baseline | mlgate | ratio / added | target | met |",
            "|---|---|---|---|---|---|"]
    if "throughput" in s:
        t = s["throughput"]
        rows.append(f"| gateway throughput (req/s) | nginx {fmt(t['rps']['nginx'])}; direct "
                    f"{fmt(t['rps']['direct'])} | {fmt(t['rps']['mlgate'])} | "
                    f"{fmt(t['ratio_mlgate_nginx'], 2)} of nginx | >= {t['target']:g} | "
                    f"{'yes' if t['met'] else 'no'} |")
        rows.append(f"| gateway throughput vs. its framework (req/s) | plain aiohttp proxy "
                    f"{fmt(t['rps']['aiohttp'])} | {fmt(t['rps']['mlgate'])} | "
                    f"{fmt(t['ratio_mlgate_aiohttp'], 2)} of aiohttp | | |")
        rows.append(f"| gateway throughput vs. its own server, no feature (req/s) | "
                    f"bench/protocol_proxy.py {fmt(t['rps']['protocol'])} | "
                    f"{fmt(t['rps']['mlgate'])} | "
                    f"{fmt(t['ratio_mlgate_protocol'], 2)} of it | | |")
        cpu_met = t["cpu_ratio_nginx_mlgate"]["median"] >= t["cpu_target"]
        rows.append(f"| gateway CPU per request, stub upstream (µs) | nginx "
                    f"{fmt(t['cpu_us_per_request']['nginx'])}; aiohttp "
                    f"{fmt(t['cpu_us_per_request']['aiohttp'])}; no-feature server "
                    f"{fmt(t['cpu_us_per_request']['protocol'])} | "
                    f"{fmt(t['cpu_us_per_request']['mlgate'])} | "
                    f"nginx / mlgate {fmt(t['cpu_ratio_nginx_mlgate'], 2)} | "
                    f">= {t['cpu_target']:g} | {'yes' if cpu_met else 'no'} |")
    if "real_model" in s:
        r = s["real_model"]
        rows.append(f"| gateway CPU per request, wine model behind (µs) | nginx "
                    f"{fmt(r['cpu_us_per_request']['nginx'])} at "
                    f"{fmt(r['rps']['nginx'])} req/s | {fmt(r['cpu_us_per_request']['mlgate'])}"
                    f" at {fmt(r['rps']['mlgate'])} req/s | nginx / mlgate "
                    f"{fmt(r['cpu_ratio_nginx_mlgate'], 2)} | >= {r['target']:g} | "
                    f"{'yes' if r['met'] else 'no'} |")
    if "latency" in s:
        lt = s["latency"]
        a, ab = lt["added_ms"], lt["absolute_ms"]
        for q in ("p50", "p99"):
            target = lt[f"target_added_{q}_ms"]
            met = "yes" if a["mlgate"][q]["median"] <= target else "no"
            rows.append(f"| added {q} at {lt['rate']:g} req/s (ms) | "
                        f"nginx +{fmt(a['nginx'][q], 3)}; aiohttp +{fmt(a['aiohttp'][q], 3)}; "
                        f"no-feature server +{fmt(a['protocol'][q], 3)}; "
                        f"direct {q} {fmt(ab['direct'][q], 3)} | "
                        f"{fmt(ab['mlgate'][q], 3)} |"
                        f" +{fmt(a['mlgate'][q], 3)} | <= {target:g} | {met} |")
    if "predictor" in s:
        p = s["predictor"]
        rows.append(f"| predictor (req/s) | mlflow models serve {fmt(p['rps']['mlflow'])} | "
                    f"{fmt(p['rps']['mlgate'])} | {fmt(p['ratio_mlgate_mlflow'], 1)}x | "
                    f">= {p['target']:g}x | {'yes' if p['met'] else 'no'} |")
        rows.append(f"| predictor p50 / p99 (ms) | {fmt(p['p50_ms']['mlflow'], 2)} / "
                    f"{fmt(p['p99_ms']['mlflow'], 2)} | {fmt(p['p50_ms']['mlgate'], 2)} / "
                    f"{fmt(p['p99_ms']['mlgate'], 2)} | | | |")
    if "feedback" in s:
        f = s["feedback"]
        rows.append(f"| durable feedback (records/s) | | {fmt(f['records_per_s'])} | | "
                    f">= {f['target']:g} | {'yes' if f['met'] else 'no'} |")
    rows += quality_bench.markdown_rows(s)
    rows += overload_bench.markdown_rows(s, fmt)
    if "cold_start" in s:
        c = s["cold_start"]
        fresh, forked = c["phases"]["fresh"], c["phases"]["forked"]
        rows.append(f"| first answer from zero replicas, wine model (s) | | "
                    f"{fmt(c['seconds'], 3)} | | <= {c['target']:g} | "
                    f"{'yes' if c['met'] else 'no'} |")
        rows.append(f"| replica start: import / load / first predict (s) | fresh interpreter "
                    f"{fresh['import_s']:.2f} / {fresh['load_s']:.2f} / "
                    f"{fresh['first_predict_s']:.4f} | forked from the zygote: - / "
                    f"{forked['load_s']:.3f} / {forked['first_predict_s']:.4f} (zygote, once: "
                    f"{forked['zygote_import_s']:.2f} import + {forked['zygote_warm_up_s']:.2f}"
                    f" warm-up) | | | |")
    if "memory" in s:
        m = s["memory"]
        rows.append(f"| gateway RSS (MB) | after {m['warmup_requests']} requests: "
                    f"{m['rss_after_warmup_mb']:.1f} | after {m['requests']}: "
                    f"{m['rss_after_mb']:.1f} | {m['growth_mb']:+.1f} MB | "
                    f"<= +{m['target_growth_mb']:g} MB | {'yes' if m['met'] else 'no'} |")
    if "batch" in s:
        b = s["batch"]
        rows.append(f"| batch job (rows/s) | pyfunc in-process {fmt(b['rows_per_s']['in_process'])}"
                    f"; a pandas script {fmt(b['rows_per_s']['in_process_script'])} | "
                    f"{fmt(b['rows_per_s']['mlgate'])} | {fmt(b['ratio'], 2)} of in-process "
                    f"({fmt(b['ratio_to_script'], 2)} of the script) | >= {b['target']:g} | "
                    f"{'yes' if b['met'] else 'no'} |")
    env = results["environment"]
    lines = [
        "# Benchmark results",
        "",
        f"`{results['command']}` on {env['cpus']} CPUs ({env['machine']}), {env['started']}; "
        f"load average {env['load_before']} before, {env['load_after']} after; "
        f"{results['config']['runs']} runs of {results['config']['duration']:g} s each, "
        f"median (min-max); mlgate with {results['config']['workers']} worker process(es), "
        "every feature on.",
        "",
        *rows,
        "",
        "Commands:",
        "",
    ]
    for name, scen in s.items():
        lines.append(f"- {name}: `{scen['command']}`")
    lines.append("")
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = results["scenarios"]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    ax = axes[0][0]
    if "throughput" in s:
        names = ["direct", "nginx", "aiohttp", "mlgate"]
        med = [s["throughput"]["rps"][n]["median"] for n in names]
        ax.bar(names, med, color=["#999", "#4a7", "#b84", "#37c"])
        ax.set_title(f"gateway throughput, req/s (mlgate/nginx "
                     f"{s['throughput']['ratio_mlgate_nginx']['median']:.2f})")
    ax = axes[0][1]
    if "latency" in s:
        lt = s["latency"]
        names = ["direct", "nginx", "aiohttp", "mlgate"]
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], [lt["absolute_ms"][n]["p50"]["median"] for n in names],
               0.4, label="p50")
        ax.bar([i + 0.2 for i in x], [lt["absolute_ms"][n]["p99"]["median"] for n in names],
               0.4, label="p99")
        ax.set_xticks(list(x), names)
        ax.set_ylabel("ms")
        ax.legend()
        ax.set_title(f"latency at {lt['rate']:g} req/s, open loop")
    ax = axes[1][0]
    if "predictor" in s:
        p = s["predictor"]
        ax.bar(["mlflow models serve", "mlgate predictor"],
               [p["rps"]["mlflow"]["median"], p["rps"]["mlgate"]["median"]], color=["#c73", "#37c"])
        ax.set_title(f"predictor, wine model, req/s ({p['ratio_mlgate_mlflow']['median']:.1f}x)")
    ax = axes[1][1]
    if "memory" in s:
        m = s["memory"]
        xs = [a / 1000 for a, _ in m["samples"]]
        ax.plot(xs, [b for _, b in m["samples"]], marker="o")
        ax.set_xlabel("thousand requests after warm-up")
        ax.set_ylabel("RSS, MB")
        ax.set_ylim(0, max(b for _, b in m["samples"]) * 1.25)
        ax.set_title(f"gateway memory ({m['growth_mb']:+.1f} MB)")
    fig.suptitle("mlgate benchmarks (make bench)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


@contextlib.contextmanager
def temporary_dir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mlgate-bench-"))
    try:
        yield path
    finally:
        if keep:
            log(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


SCENARIOS = ("throughput", "latency", "predictor", "feedback", "memory", "real_model",
             "cold_start", "batch", "joiner", "export", "overload")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--workers", type=int, default=2,
                        help="mlgate up --workers; nginx gets as many worker processes")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--predictor-connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--memory-requests", type=int, default=1_000_000)
    parser.add_argument("--memory-warmup", type=int, default=50_000)
    parser.add_argument("--batch-rows", type=int, default=400_000)
    parser.add_argument("--joiner-predictions", type=int, default=20_000,
                        help="predictions the joiner benchmark's feedback refers to")
    parser.add_argument("--export-predictions", type=int, default=1_000_000)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--out", default=str(BENCH), help="where results.* are written")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if shutil.which("wrk") is None and set(only) - {"batch"}:
        raise SystemExit("wrk is not installed: run `make bench` (it installs it)")
    results: dict[str, Any] = {
        "command": "make bench" if os.environ.get("MLGATE_BENCH_MAKE") else
                   command_line(["bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "environment": {
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cpus": os.cpu_count(),
            "machine": platform.machine(), "python": platform.python_version(),
            "load_before": load_average(),
            "nginx": subprocess.run([nginx_binary(), "-v"], capture_output=True,
                                    text=True).stderr.strip() if set(only) - {"batch"} else "",
        },
        "config": {"runs": args.runs, "duration": args.duration, "workers": args.workers,
                   "connections": args.connections, "rate": args.rate,
                   "predictor_connections": args.predictor_connections},
        "targets": TARGETS,
        "scenarios": {},
    }
    started = time.monotonic()
    with temporary_dir(args.keep) as tmp:
        gateway_parts = [x for x in ("throughput", "latency", "feedback", "memory") if x in only]
        if gateway_parts:
            with Stack(tmp, args.workers) as stack:
                if "throughput" in only or "latency" in only:
                    results["scenarios"].update(scenario_gateway(
                        stack, args, tmp, "throughput" in only, "latency" in only))
                if "feedback" in only:
                    results["scenarios"]["feedback"] = scenario_feedback(stack, args, tmp)
                if "memory" in only:
                    results["scenarios"]["memory"] = scenario_memory(stack, args, tmp)
            if "feedback" in only:
                fb = results["scenarios"]["feedback"]
                fb["records_on_disk_after_stop"] = stored_feedback(tmp / "mlgate")
                fb["durable_check"] = fb["records_on_disk_after_stop"] >= fb["answered_200"]
        if "predictor" in only:
            results["scenarios"]["predictor"] = scenario_predictor(args, tmp)
        if "batch" in only:
            from batch import scenario_batch

            (tmp / "batch").mkdir()
            results["scenarios"]["batch"] = scenario_batch(
                args.runs, args.batch_rows, 2, 4, 1000, 1, tmp / "batch")
        if "joiner" in only:
            results["scenarios"]["joiner"] = quality_bench.scenario_joiner(
                args, tmp, sys.modules[__name__])
        if "export" in only:
            results["scenarios"]["export"] = quality_bench.scenario_export(args, tmp, log)
        if "real_model" in only:
            results["scenarios"]["real_model"] = scenario_real_model(args, tmp)
        if "cold_start" in only:
            results["scenarios"]["cold_start"] = scenario_cold_start(args, tmp)
        if "overload" in only:
            results["scenarios"]["overload"] = overload_bench.scenario_overload(
                args, tmp, sys.modules[__name__])
    results["environment"]["load_after"] = load_average()
    results["environment"]["seconds"] = round(time.monotonic() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (out / "RESULTS.md").write_text(table)
    chart(results, out / "results.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
