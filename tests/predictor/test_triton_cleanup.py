"""Clearing what a killed Triton replica left, with real processes and real shared memory."""

import os
import subprocess
import sys
import time
from multiprocessing import shared_memory

import psutil

from predictor.triton.cleanup import (
    PID_FILE,
    SEGMENTS_FILE,
    SHM_DIR,
    reap,
    record_binding,
    record_segments,
    shm_names_mapped,
    workspace_path,
)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_reap_kills_orphans_unlinks_segments_and_removes_the_workspace(tmp_path):
    state = tmp_path / "wine-0"
    state.mkdir()
    workspace = workspace_path(state) / "tritonserver" / "bin"
    workspace.mkdir(parents=True)
    binding_pid = dead_pid()
    record_binding(state, binding_pid)
    # an "orphaned tritonserver": a process running out of the workspace
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                               str(workspace / "tritonserver")])
    recorded = shared_memory.SharedMemory(create=True, size=4096)
    backend_name = f"pytrtion{binding_pid}-deadbeef"
    (SHM_DIR / backend_name).write_bytes(b"\0" * 16)
    try:
        assert recorded.name in shm_names_mapped([os.getpid()])
        record_segments(state, {recorded.name})
        done = reap(state)
        assert orphan.pid in done.killed
        orphan.wait(10)  # psutil already reaped it (so the return code is lost)
        assert not psutil.pid_exists(orphan.pid)
        assert sorted(done.unlinked) == sorted([recorded.name, backend_name])
        assert not (SHM_DIR / recorded.name).exists() and not (SHM_DIR / backend_name).exists()
        assert done.workspace_removed and not workspace_path(state).exists()
        assert not (state / SEGMENTS_FILE).exists() and not (state / PID_FILE).exists()
        assert not reap(state)  # nothing left the second time
    finally:
        if orphan.poll() is None:
            orphan.kill()
        recorded.close()
        for name in (recorded.name, backend_name):
            (SHM_DIR / name).unlink(missing_ok=True)


def test_reap_leaves_a_live_binding_process_alone(tmp_path):
    state = (tmp_path / "wine-0").resolve()
    state.mkdir()
    workspace_path(state).mkdir(parents=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                             "predictor.triton.server", "--state-dir", str(state)])
    try:
        # (a binding process records itself after exec; wait for this one's exec too)
        for _ in range(500):
            if "predictor.triton.server" in psutil.Process(live.pid).cmdline():
                break
            time.sleep(0.01)
        record_binding(state, live.pid)
        done = reap(state)
        assert done.busy_pid == live.pid and not done
        assert workspace_path(state).exists() and psutil.pid_exists(live.pid)
        assert reap(state, skip_pid=live.pid).workspace_removed
    finally:
        live.kill()
        live.wait()
        reap(state)


def test_workspaces_have_short_paths_for_unix_sockets(tmp_path):
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 6) / "triton" / "wine-0"
    assert len(str(workspace_path(deep))) < 48
    assert workspace_path(deep) == workspace_path(deep)
    assert workspace_path(deep) != workspace_path(deep.parent / "wine-1")


def test_segment_record_only_grows(tmp_path):
    assert record_segments(tmp_path, {"psm_a"}) == {"psm_a"}
    assert record_segments(tmp_path, {"psm_b"}) == {"psm_a", "psm_b"}
    assert record_segments(tmp_path, set()) == {"psm_a", "psm_b"}
