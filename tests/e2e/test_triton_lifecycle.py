"""Killing Triton replicas leaves nothing behind: no tritonserver, no /dev/shm segment.

Two stacks, one after the other on the same data dir (three Triton starts):

1. the replica's whole process group is SIGKILLed (binding process, tritonserver,
   stubs, PyTriton's resource tracker: nothing can clean up) and so is mlgate; the
   segments are really left behind;
2. the next ``mlgate up`` on that data dir clears them before its replica starts;
   then only the replica's Python parent is SIGKILLed: tritonserver follows it
   (PR_SET_PDEATHSIG), requests fail cleanly until the runtime restarts the replica
   (after ``local.restart_backoff``; the manifest turns the cold-start hold off), the
   restarted replica serves, and after SIGTERM to mlgate nothing of any run is left.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from predictor.triton.cleanup import SHM_DIR, workspace_path
from tests.e2e.triton_helpers import binding_processes, leftovers, snapshot

pytestmark = pytest.mark.e2e

MOUNT = "/model/wine-triton"
BODY = {"inputs": [{"name": "input0", "shape": [1, 11], "datatype": "FP32",
                    "data": [[7.0, 0.27, 0.36, 20.7, 0.045, 45.0, 170.0, 1.001, 3.0, 0.45, 8.8]]}]}


def manifest(tmp_path, demo_models) -> str:
    path = tmp_path / "wine-triton.yaml"
    path.write_text(f"""kind: ModelDeployment
id: wine-triton
spec:
  image: file://{demo_models / "wine-v1"}
  predictor: triton
  minReplicas: 1
  annotations:
    mlgate.io/cold-start-timeout: "0"
""")
    return str(path)


def wait_for(predicate, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def infer(stack) -> int:
    with stack.client() as http:
        return http.post(f"{MOUNT}/v2/models/wine/infer", json=BODY).status_code


def test_killed_replicas_leave_nothing_behind(mlgate, tmp_path, demo_models):
    data_dir = tmp_path / "data"
    args = ["-f", manifest(tmp_path, demo_models)]

    env = {"MLGATE_LOCAL_RESTART_BACKOFF": "5"}
    first = mlgate(args, data_dir=data_dir, env=env)
    first.wait_state("wine-triton", "Ready")
    assert infer(first) == 200
    run1 = snapshot(data_dir)
    (binding,) = run1.bindings
    assert run1.tritonservers and run1.segments
    # record every segment before killing (the watcher records every 2 s)
    assert wait_for(lambda: snapshot(data_dir).segments >= run1.segments)
    first.proc.send_signal(signal.SIGSTOP)  # mlgate must not clean up after its replica
    os.killpg(os.getpgid(binding), signal.SIGKILL)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert wait_for(lambda: not binding_processes(data_dir))
    left = [n for n in run1.segments if (SHM_DIR / n).exists()]
    assert left, "a SIGKILL of the whole replica should leave its segments"
    assert workspace_path(run1.state_dirs[0]).exists()

    second = mlgate(args, data_dir=data_dir, env=env)
    second.wait_state("wine-triton", "Ready")
    # cleared before the new replica started (which uses the same workspace path)
    assert leftovers(data_dir, run1, timeout=0, workspaces=False) == []
    assert infer(second) == 200
    run2 = snapshot(data_dir)
    (parent,) = run2.bindings
    os.kill(parent, signal.SIGKILL)
    assert wait_for(lambda: not any(
        _running(pid, run2.processes[pid]) for pid in run2.tritonservers))
    with second.client() as http:
        resp = http.post(f"{MOUNT}/v2/models/wine/infer", json=BODY)
    assert resp.status_code in (502, 503) and resp.json()["message"]
    assert wait_for(lambda: "replica wine-triton-0: exit code" in second.stderr())
    # restarted after the backoff; what the killed replica left is cleared
    assert wait_for(lambda: infer(second) == 200, timeout=180)
    run3 = snapshot(data_dir)
    assert set(run3.bindings) and not set(run3.bindings) & set(run2.bindings)
    assert leftovers(data_dir, run2, workspaces=False) == []
    assert second.stop() == 0
    assert leftovers(data_dir, run3) == []
    assert leftovers(data_dir, run2) == []
    assert leftovers(data_dir, run1, timeout=0) == []


def _running(pid: int, created: float) -> bool:
    import psutil

    try:
        proc = psutil.Process(pid)
        return proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
