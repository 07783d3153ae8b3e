"""``python -m predictor.zygote``: a warm parent that forks odahu-ml-server replicas.

Starting a replica from a fresh interpreter spends seconds importing MLflow,
scikit-learn and pandas, and MLflow's first load imports more (skops scans every
scikit-learn estimator, the requirements check reads every installed package). The
zygote does all of that once: it imports the predictor, then loads a small model it
builds itself through the same code path as a replica, so every lazy import and
cache a load touches is warm. A replica is then a ``fork`` of it that only loads its
own model (copy-on-write memory), serving on the listening socket the runtime bound
for it, exactly as ``python -m predictor --fd N`` would.

The zygote never starts a thread or an event loop (forking either is a trap): it is
one thread in a ``select`` loop over its control socket. The control socket is an
``AF_UNIX`` ``SOCK_SEQPACKET`` pair (one message per request, file descriptors
attached with ``SCM_RIGHTS``); messages are JSON:

* runtime -> zygote: ``{"id": n, "argv": [...], "env": {...}, "adopter": pid}`` with
  two descriptors, the replica's listening socket and its log file;
* zygote -> runtime: ``{"ready": true, "import_s": ..., "warm_s": ...}`` once warm,
  ``{"id": n, "pid": p}`` after a fork (or ``{"id": n, "error": "..."}``).

A replica is the runtime's child, as a spawned one is: the zygote forks a short-lived
middle process that forks the replica and exits, and the runtime, a child subreaper
(``PR_SET_CHILD_SUBREAPER``), adopts the orphan, so it reaps it, gets its exit code and
sees it in its process tree. The replica waits for that adoption, then dies with the
runtime (``PR_SET_PDEATHSIG``); it has its own session (``setsid``), its log file as
stdout and stderr and its own environment additions. The zygote dies with the
runtime too, and exits when the control socket closes.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
import tempfile
import time
from typing import Any

PR_SET_PDEATHSIG = 1
MAX_MESSAGE = 1 << 20


def die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def warm_up() -> tuple[float, float]:
    """Import what a replica runs, then load a model built here: (import s, warm-up s)."""
    started = time.perf_counter()
    import mlflow.pyfunc
    import mlflow.sklearn
    import numpy as np
    import pandas as pd  # noqa: F401
    import sklearn.linear_model
    import uvloop  # noqa: F401
    from aiohttp import web  # noqa: F401

    import predictor.server  # noqa: F401
    from predictor.model import load_model

    imported = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlgate-zygote-") as tmp:
        x = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0]])
        model = sklearn.linear_model.LinearRegression().fit(x, np.array([0.0, 1.0, 2.0]))
        path = os.path.join(tmp, "warm-up")
        mlflow.sklearn.save_model(model, path, pip_requirements=["scikit-learn"])
        load_model(path)
    return imported - started, time.perf_counter() - imported


def send(control: socket.socket, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        control.send(json.dumps(message).encode())


def receive(control: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """One request and its descriptors; None when the runtime closed the socket."""
    fds = array.array("i")
    data, ancdata, _flags, _addr = control.recvmsg(
        MAX_MESSAGE, socket.CMSG_SPACE(2 * fds.itemsize))
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    if not data:
        for fd in fds:
            os.close(fd)
        return None
    return json.loads(data), list(fds)


def await_adoption(middle: int, adopter: int | None) -> bool:
    """In the replica: wait until the short-lived middle process is gone and the runtime
    (a child subreaper) is the parent, then die with it. False if someone else adopted."""
    deadline = time.monotonic() + 10
    while os.getppid() == middle and time.monotonic() < deadline:
        time.sleep(0.0005)
    die_with_parent()
    return adopter is None or os.getppid() == adopter


def run_child(control: socket.socket, request: dict[str, Any], listen_fd: int,
              log_fd: int, middle: int) -> int:
    """In the forked replica: become ``python -m predictor --fd <listen_fd> ...``."""
    os.setsid()
    control.close()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(devnull)
    os.close(log_fd)
    if not await_adoption(middle, request.get("adopter")):
        print("predictor.zygote: the runtime did not adopt this replica (is it a child "
              "subreaper?)", file=sys.stderr, flush=True)
        return 1
    os.environ.update(request.get("env") or {})
    argv = [*request["argv"], "--fd", str(listen_fd)]
    with contextlib.suppress(ImportError):  # ps and psutil show what a spawned replica shows
        import setproctitle

        setproctitle.setproctitle(" ".join([sys.executable, "-m", "predictor", *argv]))
    import numpy as np

    np.random.seed()  # not the zygote's state (Python's random reseeds itself at fork)
    from predictor.__main__ import main

    return main(argv)


def fork_replica(control: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    if len(fds) != 2:
        for fd in fds:
            os.close(fd)
        send(control, {"id": request.get("id"), "error": "expected two file descriptors"})
        return
    listen_fd, log_fd = fds
    sys.stdout.flush()
    sys.stderr.flush()
    pid_r, pid_w = os.pipe()
    middle = os.fork()
    if middle == 0:  # the middle process: fork the replica, tell its pid, leave
        code = 1
        try:
            os.close(pid_r)
            replica = os.fork()
            if replica == 0:
                os.close(pid_w)
                code = _replica_main(control, request, listen_fd, log_fd, os.getppid())
            else:
                os.write(pid_w, str(replica).encode())
                code = 0
        finally:
            os._exit(code)
    os.close(pid_w)
    os.close(listen_fd)
    os.close(log_fd)
    with os.fdopen(pid_r, "rb") as answer:
        replica = int(answer.read() or b"0")
    os.waitpid(middle, 0)
    if replica:
        send(control, {"id": request.get("id"), "pid": replica})
    else:
        send(control, {"id": request.get("id"), "error": "the fork failed"})


def _replica_main(control: socket.socket, request: dict[str, Any], listen_fd: int,
                  log_fd: int, middle: int) -> int:
    code = 1
    try:
        code = run_child(control, request, listen_fd, log_fd, middle)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
    return code


def serve(control: socket.socket) -> int:
    while True:
        got = receive(control)
        if got is None:
            return 0
        fork_replica(control, *got)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m predictor.zygote", description=__doc__)
    parser.add_argument("--control-fd", type=int, required=True)
    args = parser.parse_args(argv)
    die_with_parent()
    control = socket.socket(fileno=args.control_fd)
    try:
        import_s, warm_s = warm_up()
    except Exception as exc:  # replicas still fork; their first load pays what is cold
        print(f"predictor.zygote: warm-up failed: {exc!r}", file=sys.stderr, flush=True)
        import_s = warm_s = -1.0
    send(control, {"ready": True, "import_s": round(import_s, 3), "warm_s": round(warm_s, 3)})
    return serve(control)


if __name__ == "__main__":
    sys.exit(main())
