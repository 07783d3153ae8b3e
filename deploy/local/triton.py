"""Triton replicas as local processes: start, wait until the model is ready, clean up.

The ``predictor: triton`` counterpart of :func:`deploy.local.process.start_replica`:
same arguments, returns a :class:`ReplicaProcess` (a :class:`TritonReplica`) that the
local runtime watches, restarts and stops like any other.

A replica is ``python -m predictor.triton.server`` (the binding process, which runs
``tritonserver``) with its own state directory ``<data_dir>/triton/<id>-<n>/``.
Triton binds its own HTTP port, so there is no inherited socket: the binding
process picks a free port and reports it in ``replica.json`` once the model is
loaded. The replica counts as started when that file names this process and
Triton answers both ``/v2/health/ready`` (which turns 200 before models are
loaded) and ``/v2/models/<name>/ready``; the latter is then its health check. The
model's name and version for the gateway's headers and the deployment's status
come from its v2 metadata; the OpenAPI document the binding process wrote is
handed to the gateway as the deployment's ``/api/model/info``.

Before a start and after every stop, :func:`predictor.triton.cleanup.reap` clears
what a killed replica left: orphaned ``tritonserver`` processes, ``/dev/shm``
segments and the PyTriton workspace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from deploy.local.process import (
    ReplicaProcess,
    ReplicaStartError,
    die_with_parent,
    raise_if_exited,
    stop_replica,
)
from predictor.triton.cleanup import OPENAPI_FILE, READY_FILE, reap
from predictor.triton.openapi import metadata_path

log = logging.getLogger("mlgate.runtime")
INFO_PATH = "/api/model/info"

__all__ = ["TritonReplica", "start_triton_replica", "triton_state_dir"]


@dataclass
class TritonReplica(ReplicaProcess):
    state_dir: Path = field(default_factory=Path)
    triton_model: str = ""  # the model's name in Triton (paths /v2/models/<name>/...)

    async def cleanup(self) -> None:
        await asyncio.to_thread(reap, self.state_dir)


def triton_state_dir(root: Path, deployment_id: str, index: int) -> Path:
    return (root / f"{deployment_id}-{index}").resolve()


async def start_triton_replica(deployment_id: str, index: int, uri: str, log_dir: Path,
                               timeout: float, host: str = "127.0.0.1",
                               env: dict[str, str] | None = None,
                               state_root: Path | None = None) -> TritonReplica:
    """Start one Triton replica and return it once its model is ready.

    ``state_root`` defaults to ``<log_dir>/../triton`` (``<data_dir>/triton``).
    Raises :class:`ModelCannotLoad` when the binding process exits saying the model
    cannot be served (exit code 3), :class:`ReplicaStartError` otherwise.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{deployment_id}-{index}.log"
    state_dir = triton_state_dir(state_root or log_dir.parent / "triton", deployment_id, index)
    state_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(reap, state_dir)  # what a SIGKILLed predecessor left
    cmd = [sys.executable, "-m", "predictor.triton.server", "--model-uri", uri,
           "--state-dir", str(state_dir), "--host", host]
    with open(log_path, "ab") as log_file:
        process = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
            start_new_session=True, preexec_fn=die_with_parent,
            env={**os.environ, **(env or {})})
    replica = TritonReplica(deployment_id, index, host, 0, process, log_path, state_dir=state_dir)
    log.info("triton replica %s-%d starting (pid %d, state %s)", deployment_id, index,
             process.pid, state_dir)
    try:
        await wait_triton_ready(replica, timeout)
    except BaseException:
        await stop_replica(replica, 5.0)
        raise
    return replica


def _ready_record(replica: TritonReplica) -> dict[str, Any] | None:
    try:
        record = json.loads((replica.state_dir / READY_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("pid") != replica.process.pid:
        return None  # not written yet, or a predecessor's
    return record


async def _status(session: aiohttp.ClientSession, url: str) -> int:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with session.get(url) as resp:
            await resp.read()
            return resp.status
    return 0


async def wait_triton_ready(replica: TritonReplica, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    name = f"{replica.deployment_id}-{replica.index}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while True:
            raise_if_exited(replica, "triton replica")
            record = _ready_record(replica)
            if record is not None:
                replica.port = int(record["http_port"])
                replica.triton_model = str(record["model_name"])
                base = f"http://{replica.host}:{replica.port}"
                model_path = metadata_path(replica.triton_model)
                if (await _status(session, base + "/v2/health/ready") == 200
                        and await _status(session, base + model_path + "/ready") == 200):
                    replica.health_path = model_path + "/ready"
                    await _describe(session, replica, base + model_path, record)
                    return
            if time.monotonic() > deadline:
                raise ReplicaStartError(
                    f"triton replica {name} did not become ready within {timeout:g}s")
            await asyncio.sleep(0.2)


async def _describe(session: aiohttp.ClientSession, replica: TritonReplica, model_url: str,
                    record: dict[str, Any]) -> None:
    """Name, version and OpenAPI document of the served model, from Triton's metadata."""
    async with session.get(model_url) as resp:
        metadata = await resp.json()
    versions = [str(v) for v in metadata.get("versions") or [record["model_version"]]]
    replica.model_name = str(metadata.get("name") or record["model_name"])
    replica.model_version = max(versions, key=lambda v: (len(v), v))
    document = (replica.state_dir / str(record.get("openapi") or OPENAPI_FILE)).read_bytes()
    replica.documents = {INFO_PATH: document}
