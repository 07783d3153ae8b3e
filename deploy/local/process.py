"""Replica processes: start a predictor on a free port, wait for health, stop it.

The runtime binds the listening socket itself (127.0.0.1, port 0) and hands it
to the predictor as an inherited file descriptor, so there is no window in
which another process can take the port. A replica dies with mlgate
(``PR_SET_PDEATHSIG``) even when mlgate is killed with SIGKILL.

:class:`ReplicaProcess` is what the runtime holds of any replica, whatever its
predictor: where it listens, which path answers its health checks, which
documents the gateway answers for it, and what to clear after it stopped
(:meth:`ReplicaProcess.cleanup`). :func:`start_replica` starts an
``odahu-ml-server`` one; ``deploy.local.triton`` starts a Triton one;
:func:`deploy.local.runtime.starter_for` picks by predictor.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from deploy.control.images import FILE_SCHEME
from deploy.control.runtime import GiveUp, RetryLater

log = logging.getLogger("mlgate.runtime")
PR_SET_PDEATHSIG = 1
EXIT_LOAD_FAILED = 3  # the predictor's exit code when the model cannot be loaded


class ReplicaStartError(RetryLater):
    """A replica did not become healthy; worth another try after a delay."""


class ModelCannotLoad(GiveUp):
    """The predictor exited because the model cannot load: retrying the same spec cannot help."""


def model_uri(image: str, tracking_uri: str | None = None) -> str:
    """The predictor's ``--model-uri`` for an image; ``GiveUp`` for what this runtime cannot run.

    ``file://<dir>`` and absolute paths name an MLflow model directory; ``models:/name/version``
    is fetched by MLflow from the tracking server (only when one is configured).
    """
    if image.startswith("models:/"):
        if not tracking_uri:
            raise GiveUp(f"image {image!r} is an MLflow registry URI but no tracking URI is "
                         "configured: set local.mlflow_tracking_uri or MLFLOW_TRACKING_URI")
        return image
    if image.startswith(FILE_SCHEME):
        path = Path(image[len(FILE_SCHEME):])
    elif image.startswith("/"):
        path = Path(image)
    else:
        raise GiveUp(
            f"the local runtime cannot run container image {image!r}: use file://<MLflow model "
            "directory> or run mlgate with runtime: kubernetes")
    if not (path / "MLmodel").is_file():
        raise GiveUp(f"{path} is not an MLflow model directory (no MLmodel file)")
    return str(path)


def die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ReplicaProcess:
    deployment_id: str
    index: int
    host: str
    port: int
    process: asyncio.subprocess.Process
    log_path: Path
    model_name: str = ""
    model_version: str = ""
    _ps: psutil.Process | None = field(default=None, repr=False)
    health_path: str = "/healthcheck"
    """Answers 200 while the replica can serve; the runtime polls it."""
    documents: dict[str, bytes] = field(default_factory=dict)
    """Answers the gateway gives itself for ``GET <path>`` (see ``gateway.routing.Deployment``)."""

    async def cleanup(self) -> None:
        """Runs after the process is reaped; replicas that leave things behind override it."""

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def usage(self) -> tuple[float, int] | None:
        """CPU seconds (user + system) and resident bytes of the process; None once gone."""
        try:
            if self._ps is None:
                self._ps = psutil.Process(self.process.pid)
            with self._ps.oneshot():
                cpu = self._ps.cpu_times()
                rss = self._ps.memory_info().rss
        except psutil.Error:
            return None
        return cpu.user + cpu.system, rss

    def last_log_line(self) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines()
                     if ln.strip()]
        except OSError:
            return ""
        return lines[-1].strip() if lines else ""


async def start_replica(deployment_id: str, index: int, uri: str, log_dir: Path,
                        timeout: float, host: str = "127.0.0.1",
                        env: dict[str, str] | None = None,
                        fork: Fork | None = None) -> ReplicaProcess:
    """Start one predictor process and return it once ``/healthcheck`` answers 200.

    ``fork``: the predictor zygote's (:mod:`deploy.local.zygote`); the replica is a fork
    of the warm zygote when it can, else a fresh ``python -m predictor``.

    Raises :class:`ModelCannotLoad` when the predictor exits saying so (exit code 3),
    :class:`ReplicaStartError` for any other exit or when it is not healthy in time.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{deployment_id}-{index}.log"
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    args = ["--model-uri", uri, "--host", host]
    process: Any = None
    how = "forked from the zygote"
    try:
        if fork is not None:
            with contextlib.suppress(ZygoteUnavailable):
                process = await fork(args, env, sock, log_path)
        if process is None:
            how = "spawned"
            with open(log_path, "ab") as log_file:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "predictor", *args, "--fd", str(sock.fileno()),
                    stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                    pass_fds=(sock.fileno(),), start_new_session=True,
                    preexec_fn=die_with_parent, env={**os.environ, **(env or {})})
    finally:
        sock.close()
    replica = ReplicaProcess(deployment_id, index, host, port, process, log_path)
    log.info("replica %s-%d starting on %s:%d (pid %d, %s)", deployment_id, index, host, port,
             process.pid, how)
    try:
        await wait_healthy(replica, timeout)
    except BaseException:
        await stop_replica(replica, 5.0)
        raise
    return replica


def raise_if_exited(replica: ReplicaProcess, what: str = "replica") -> None:
    """While waiting for a start: a replica that exited is :class:`ModelCannotLoad` when its
    model could not load (the spec cannot work), else :class:`ReplicaStartError`."""
    code = replica.process.returncode
    if code is None:
        return
    reason = replica.last_log_line() or f"exit code {code}"
    if code == EXIT_LOAD_FAILED:
        raise ModelCannotLoad(reason)
    raise ReplicaStartError(
        f"{what} {replica.deployment_id}-{replica.index} exited ({code}): {reason}")


async def wait_healthy(replica: ReplicaProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://{replica.host}:{replica.port}/healthcheck"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            raise_if_exited(replica)
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as resp:
                    if resp.status == 200:
                        replica.model_name = resp.headers.get("Model-Name", "")
                        replica.model_version = resp.headers.get("Model-Version", "")
                        return
            if time.monotonic() > deadline:
                raise ReplicaStartError(
                    f"replica {replica.deployment_id}-{replica.index} did not become healthy "
                    f"within {timeout:g}s")
            await asyncio.sleep(0.1)


async def stop_replica(replica: ReplicaProcess, timeout: float) -> None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; always reaps the process."""
    proc = replica.process
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            log.warning("replica %s-%d ignored SIGTERM for %gs; killing it",
                        replica.deployment_id, replica.index, timeout)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    await replica.cleanup()
    log.info("replica %s-%d stopped (exit %s)", replica.deployment_id, replica.index,
             proc.returncode)


StartReplica = Callable[..., Awaitable[ReplicaProcess]]
Fork = Callable[..., Awaitable[Any]]
"""``(argv, env, listening socket, log path) -> process``; raises :class:`ZygoteUnavailable`."""


class ZygoteUnavailable(Exception):
    """The zygote cannot fork now: the replica is spawned instead."""
"""``(deployment_id, index, uri, log_dir, timeout, *, env) -> ReplicaProcess``, once healthy."""
