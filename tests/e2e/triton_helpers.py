"""Finding a stack's Triton processes and shared memory, to prove none is left behind."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from predictor.triton.cleanup import SEGMENTS_FILE, SHM_DIR, shm_names_mapped, workspace_path


@dataclass
class TritonSnapshot:
    """Processes (pid -> create time) and segments of the Triton replicas under a data dir."""

    bindings: dict[int, float] = field(default_factory=dict)
    processes: dict[int, float] = field(default_factory=dict)  # bindings and descendants
    tritonservers: list[int] = field(default_factory=list)
    segments: set[str] = field(default_factory=set)
    state_dirs: list[Path] = field(default_factory=list)


def binding_processes(data_dir: Path) -> list[psutil.Process]:
    marker = str(Path(data_dir).resolve() / "triton")
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if "predictor.triton.server" in cmdline and any(marker in part for part in cmdline):
            found.append(proc)
    return found


def snapshot(data_dir: Path) -> TritonSnapshot:
    snap = TritonSnapshot()
    snap.state_dirs = sorted((Path(data_dir).resolve() / "triton").glob("*"))
    for binding in binding_processes(data_dir):
        try:
            tree = [binding, *binding.children(recursive=True)]
        except psutil.Error:
            continue
        snap.bindings[binding.pid] = binding.create_time()
        for proc in tree:
            try:
                snap.processes[proc.pid] = proc.create_time()
                if proc.name() == "tritonserver":
                    snap.tritonservers.append(proc.pid)
            except psutil.Error:
                continue
        snap.segments |= shm_names_mapped(snap.processes)
    for state in snap.state_dirs:
        try:
            snap.segments |= set(json.loads((state / SEGMENTS_FILE).read_text())["segments"])
        except (OSError, ValueError, KeyError):
            pass
    return snap


def _alive(pid: int, created: float) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def leftovers(data_dir: Path, before: TritonSnapshot, timeout: float = 30,
              workspaces: bool = True) -> list[str]:
    """What of ``before`` still exists (waiting up to ``timeout`` for it to go)."""
    deadline = time.monotonic() + timeout
    while True:
        left = [f"process {pid}" for pid, created in before.processes.items()
                if _alive(pid, created)]
        left += [f"/dev/shm/{name}" for name in sorted(before.segments)
                 if (SHM_DIR / name).exists()]
        for pid in before.bindings:
            left += [f"/dev/shm/{n.name}" for n in SHM_DIR.glob(f"pytrtion{pid}-*")]
        left += [str(workspace_path(s)) for s in before.state_dirs
                 if workspaces and workspace_path(s).exists()]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)
