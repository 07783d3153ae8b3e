"""``python -m predictor.triton.server``: serve one MLflow model with NVIDIA Triton (PyTriton).

This is the replica's Python parent (the "binding process"). It loads the model,
derives its tensors from the signature (:mod:`predictor.triton.tensors`), starts
the ``tritonserver`` bundled with ``nvidia-pytriton`` on ``--host:--http-port``
(HTTP only, KServe v2 protocol) and answers Triton's inference calls with the
model. Once the model is ready it writes two files into ``--state-dir``:

* ``openapi.json`` — the OpenAPI document of the model's v2 endpoints, built from
  Triton's own metadata and an example infer done through Triton at start;
* ``replica.json`` — ``{"pid", "http_port", "model_name", "model_version", ...}``,
  last, so its presence means "ready".

Lifecycle. SIGTERM/SIGINT stop Triton (in-flight requests get
``EXIT_TIMEOUT`` seconds), delete the workspace and the shared memory, exit 0.
``tritonserver`` is forked from the main thread with ``PR_SET_PDEATHSIG`` (PyTriton
does that), so it is told to stop even when this process is SIGKILLed; whatever
such a death leaves behind (see :mod:`predictor.triton.cleanup`) is cleared at the
next start on the same state directory, or by the runtime after the stop.

Exit codes: 0 stopped, 2 bad arguments, 3 the model cannot be loaded or mapped to
tensors (one stderr line says why), 4 the HTTP port is taken, 5 Triton failed.
"""

from __future__ import annotations

import _thread
import argparse
import logging
import os
import signal
import socket
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import psutil

from predictor.triton.cleanup import (
    OPENAPI_FILE,
    READY_FILE,
    reap,
    record_binding,
    record_segments,
    shm_names_mapped,
    workspace_path,
    write_json_atomic,
)

if TYPE_CHECKING:
    from predictor.triton.tensors import InputLayout, TensorSpec

log = logging.getLogger("predictor.triton")

EXIT_LOAD_FAILED = 3
EXIT_PORT_TAKEN = 4
EXIT_TRITON_FAILED = 5
EXIT_TIMEOUT = 5  # seconds tritonserver waits for in-flight requests when told to stop
MAX_BATCH_SIZE = 65536
PORT_ATTEMPTS = 3
RECORD_INTERVAL = 2.0


class _TritonDied(Exception):
    """tritonserver exited before it was ready."""


class ModelFailed(Exception):
    """The model raised; raised ``from None`` so that the client sees this short message
    (PyTriton sends the formatted exception, which would otherwise quote the model's
    whole traceback)."""


def _brief(err: BaseException, limit: int = 500) -> str:
    text = str(err).strip() or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m predictor.triton.server",
        description="Serve an MLflow model with NVIDIA Triton (KServe v2 HTTP protocol).")
    parser.add_argument("--model-uri", required=True,
                        help="model directory: a path, file:///abs/dir or file://./rel/dir")
    parser.add_argument("--state-dir", required=True,
                        help="workspace, ready file and leftovers record of this replica")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    parser.add_argument("--http-port", type=int, default=0,
                        help="HTTP port (default 0: a free one, written to replica.json)")
    parser.add_argument("--model-name", default=None, help="default: MLmodel metadata model_name")
    parser.add_argument("--model-version", default=None,
                        help="default: MLmodel metadata model_version")
    parser.add_argument("--max-batch-size", type=int, default=MAX_BATCH_SIZE,
                        help=f"rows per request and per batch (default {MAX_BATCH_SIZE})")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


@dataclass
class Binding:
    """Everything Triton needs about the model, computed once at load."""

    model_name: str  # Triton's name for the model
    model_version: int
    mlflow_version: str
    layout: InputLayout
    outputs: tuple[TensorSpec, ...]
    infer: Callable[..., dict]
    example_request: dict | None


def prepare(model_uri: str, name: str | None, version: str | None) -> Binding:
    """Load the model and plan its tensors; ``ModelLoadError``/``TensorPlanError`` say why not."""
    from predictor.model import load_model
    from predictor.triton.tensors import (
        example_request,
        model_input,
        output_tensors,
        plan_inputs,
        plan_outputs,
        triton_model_name,
        triton_model_version,
    )

    model = load_model(model_uri, name=name, version=version)
    plan = model.plan
    layout = plan_inputs(plan.columns)
    example_prediction = None
    request = None
    if model.example is not None:
        columns, rows = model.example
        try:
            example_prediction = model.predict(plan.convert(columns, rows))
            request = example_request(layout, columns, rows)
        except Exception as err:  # the model still serves; the document has no example
            log.warning("the model cannot predict its own input example: %s", err)
    outputs = plan_outputs(example_prediction, _signature_outputs(model.path))
    predict = model.predict
    dtype = plan.dtype if layout.single else None

    def infer(**tensors: Any) -> dict:
        try:
            prediction = predict(model_input(layout, tensors, dtype, plan.layout))
            return output_tensors(prediction, outputs)
        except Exception as err:
            log.warning("model failed: %s", _brief(err))
            raise ModelFailed(f"model failed: {_brief(err)}") from None

    return Binding(triton_model_name(model.name), triton_model_version(model.version),
                   model.version, layout, outputs, infer, request)


def _signature_outputs(path: Path) -> list | None:
    from mlflow.models import Model

    from predictor.schema import columns_from_schema

    signature = Model.load(str(path)).signature
    return columns_from_schema(signature.outputs) if signature is not None else None


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def library_path() -> str:
    """``LD_LIBRARY_PATH`` with the running Python's ``lib`` first: the bundled
    tritonserver's Python backend stub links ``libpython3.X.so`` from there."""
    libdir = sysconfig.get_config_var("LIBDIR") or str(Path(sys.base_prefix) / "lib")
    current = os.environ.get("LD_LIBRARY_PATH", "")
    return f"{libdir}:{current}" if current else libdir


def _tritonservers() -> list[psutil.Process]:
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for child in children:
        try:
            if child.name() == "tritonserver":
                found.append(child)
        except psutil.Error:
            continue
    return found


class Watcher(threading.Thread):
    """Records the replica's shared memory; interrupts a start whose tritonserver died.

    PyTriton's ``run()`` would wait two minutes for a server that already exited (a
    port taken, a bad config). While armed, this thread watches the tritonserver
    child and, when it goes, sends the main thread ``SIGUSR1``, whose handler raises
    :class:`_TritonDied` there — unless the main thread disarmed first (the handler
    runs on the main thread, so that check cannot race).
    """

    def __init__(self, state_dir: Path) -> None:
        super().__init__(name="triton-watcher", daemon=True)
        self.state_dir = state_dir
        self.armed = False
        self._seen_server = False
        self._halt = threading.Event()

    def arm(self) -> None:
        self._seen_server = False
        self.armed = True
        signal.signal(signal.SIGUSR1, self._on_died)

    def disarm(self) -> None:
        self.armed = False

    def _on_died(self, signum: int, frame: object) -> None:
        if self.armed:
            self.armed = False
            raise _TritonDied()

    def run(self) -> None:
        last_record = 0.0
        while not self._halt.wait(0.2):
            if self.armed:
                if _tritonservers():
                    self._seen_server = True
                elif self._seen_server:
                    self._seen_server = False
                    _thread.interrupt_main(signal.SIGUSR1)
            now = time.monotonic()
            if now - last_record >= RECORD_INTERVAL:
                last_record = now
                self.record()

    def record(self) -> None:
        try:
            pids = [os.getpid(), *(p.pid for p in psutil.Process().children(recursive=True))]
            record_segments(self.state_dir, shm_names_mapped(pids))
        except (OSError, psutil.Error) as err:
            log.debug("cannot record shared memory: %s", err)

    def stop(self) -> None:
        self._halt.set()


def _get_json(url: str, body: bytes | None = None, timeout: float = 30) -> Any:
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return orjson.loads(response.read())


def build_document(base_url: str, binding: Binding) -> dict:
    """The OpenAPI document, from Triton's metadata and its answer to the example."""
    from predictor.triton.openapi import build_triton_openapi, infer_path, metadata_path

    metadata = _get_json(base_url + metadata_path(binding.model_name))
    response = None
    if binding.example_request is not None:
        try:
            response = _get_json(base_url + infer_path(binding.model_name),
                                 orjson.dumps(binding.example_request))
        except (urllib.error.URLError, OSError, ValueError) as err:
            log.warning("the example request failed through Triton: %s", err)
    return build_triton_openapi(
        metadata, model_version=str(binding.model_version),
        input_columns=binding.layout.column_names if binding.layout.single else None,
        example_request=binding.example_request, example_response=response)


def make_triton(binding: Binding, host: str, port: int, workspace: Path,
                max_batch_size: int) -> Any:
    """A ``pytriton.triton.Triton`` with the model bound, not started yet."""
    import numpy as np
    from pytriton.decorators import batch
    from pytriton.model_config import ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    config = TritonConfig(http_address=host, http_port=port, allow_grpc=False,
                          allow_metrics=False, exit_timeout_secs=EXIT_TIMEOUT,
                          strict_readiness=True)
    triton = Triton(config=config, workspace=workspace)
    inputs = [Tensor(name=t.name, dtype=np.dtype(t.numpy_type), shape=t.dims)
              for t in binding.layout.tensors]
    outputs = [Tensor(name=t.name, dtype=np.dtype(t.numpy_type), shape=t.dims)
               for t in binding.outputs]
    triton.bind(model_name=binding.model_name, infer_func=batch(binding.infer), inputs=inputs,
                outputs=outputs, model_version=binding.model_version,
                config=ModelConfig(max_batch_size=max_batch_size), strict=False)
    return triton


def _server_log(triton: Any) -> str:
    server = getattr(triton, "_triton_server", None)
    return server.logs() if server is not None else ""


def _stop_triton(triton: Any) -> None:
    try:
        triton.stop()
    except Exception as err:
        log.warning("stopping Triton: %s", err)


def _raise_exit(signum: int, frame: object) -> None:
    raise SystemExit(0)


def start(binding: Binding, args: argparse.Namespace, state_dir: Path,
          watcher: Watcher) -> tuple[Any, int] | int:
    """``(triton, port)`` once the model is loaded in a running Triton, else an exit code.

    ``triton.run()`` runs on the main thread: ``PR_SET_PDEATHSIG`` follows the thread
    that forked tritonserver, so a worker thread's end would stop the server.
    """
    for attempt in range(1, PORT_ATTEMPTS + 1):
        port = args.http_port or free_port(args.host)
        triton = make_triton(binding, args.host, port, workspace_path(state_dir),
                             args.max_batch_size)
        watcher.arm()
        try:
            triton.run()
            watcher.disarm()
            return triton, port
        except (_TritonDied, Exception) as err:
            watcher.disarm()
            text = _server_log(triton)
            _stop_triton(triton)
            reap(state_dir, skip_pid=os.getpid())
            record_binding(state_dir, os.getpid())
            in_use = "already in use" in text
            if in_use and not args.http_port and attempt < PORT_ATTEMPTS:
                log.warning("port %d was taken; trying another", port)
                continue
            reason = _last_error_line(text) or f"{type(err).__name__}: {err}"
            print(f"triton_server: tritonserver did not start: {reason}", file=sys.stderr,
                  flush=True)
            return EXIT_PORT_TAKEN if in_use else EXIT_TRITON_FAILED
        except BaseException:  # SIGTERM while starting: stop what was started
            watcher.disarm()
            _stop_triton(triton)
            raise
    return EXIT_TRITON_FAILED


def serve(binding: Binding, args: argparse.Namespace, state_dir: Path) -> int:
    stopping = threading.Event()
    watcher = Watcher(state_dir)
    watcher.start()
    triton = None
    try:
        started = start(binding, args, state_dir, watcher)
        if isinstance(started, int):
            return started
        triton, port = started
        base_url = f"http://{args.host}:{port}"
        try:
            document = build_document(base_url, binding)
        except (urllib.error.URLError, OSError, ValueError) as err:
            print(f"triton_server: Triton does not describe the model: {err}", file=sys.stderr,
                  flush=True)
            return EXIT_TRITON_FAILED
        write_json_atomic(state_dir / OPENAPI_FILE, document)
        watcher.record()
        write_json_atomic(state_dir / READY_FILE, {
            "pid": os.getpid(), "host": args.host, "http_port": port,
            "model_name": binding.model_name, "model_version": str(binding.model_version),
            "mlflow_model_version": binding.mlflow_version, "openapi": OPENAPI_FILE})
        log.info("serving %s version %d on %s/v2/models/%s", binding.model_name,
                 binding.model_version, base_url, binding.model_name)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        while not stopping.wait(1.0):
            if not triton.is_alive():
                reason = _last_error_line(_server_log(triton)) or "tritonserver exited"
                print(f"triton_server: Triton stopped serving: {reason}", file=sys.stderr,
                      flush=True)
                return EXIT_TRITON_FAILED
        log.info("stopping")
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        watcher.stop()
        if triton is not None:
            _stop_triton(triton)
        reap(state_dir, skip_pid=os.getpid())


def _last_error_line(text: str, limit: int = 400) -> str:
    """The most telling error of a tritonserver log: a model that failed to load, else
    the last error line; shortened, with the log's escaped newlines shown as " | "."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    chosen = next((ln for ln in reversed(lines) if "failed to load" in ln), None)
    if chosen is None:
        chosen = next((ln for ln in reversed(lines)
                       if (ln[:1] == "E" and ln[1:5].isdigit()) or "error" in ln.lower()), "")
    chosen = chosen.replace("\\n", " | ")
    return chosen if len(chosen) <= limit else chosen[: limit - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Asked to stop while loading: stop now. Serving replaces these handlers.
    signal.signal(signal.SIGTERM, _raise_exit)
    signal.signal(signal.SIGINT, _raise_exit)
    state_dir = Path(args.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    for name in (READY_FILE, OPENAPI_FILE):
        (state_dir / name).unlink(missing_ok=True)
    busy = reap(state_dir, skip_pid=os.getpid()).busy_pid
    if busy is not None:
        print(f"triton_server: process {busy} already serves {state_dir}", file=sys.stderr)
        return EXIT_TRITON_FAILED
    record_binding(state_dir, os.getpid())

    from predictor.model import ModelLoadError
    from predictor.triton.tensors import TensorPlanError

    try:
        binding = prepare(args.model_uri, args.model_name, args.model_version)
    except (ModelLoadError, TensorPlanError) as err:
        print(f"triton_server: cannot serve model from {args.model_uri}: {err}",
              file=sys.stderr, flush=True)
        reap(state_dir, skip_pid=os.getpid())
        return EXIT_LOAD_FAILED
    os.environ["LD_LIBRARY_PATH"] = library_path()
    return serve(binding, args, state_dir)


if __name__ == "__main__":
    sys.exit(main())
