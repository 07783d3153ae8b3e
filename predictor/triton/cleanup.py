"""What a Triton replica leaves behind when it dies badly, and how to clear it.

A Triton replica is a tree of processes: the binding process (``python -m
predictor.triton.server``), PyTriton's block store (a spawned Python process),
``tritonserver`` and its Python backend stubs. Between them they hold POSIX
shared-memory segments in ``/dev/shm``: the Python backend's region
(``pytrtion<binding pid>-<hex>...``) and PyTriton's tensor blocks (``psm_<hex>``).
A clean stop removes them all. A SIGKILL of the whole tree does not, and a
``tritonserver`` whose parent died may stay behind.

So the binding process keeps a small record in its state directory — its pid
and every ``/dev/shm`` segment its process tree has mapped — and :func:`reap`
uses it, with the PyTriton workspace that belongs to the state directory
(:func:`workspace_path`), once the binding process is gone, to kill orphans
that still run out of that workspace, unlink those segments and delete the
workspace. It runs at the next start of the replica and after every stop.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

log = logging.getLogger("predictor.triton")

SHM_DIR = Path("/dev/shm")
PID_FILE = "binding.json"
SEGMENTS_FILE = "segments.json"
READY_FILE = "replica.json"
OPENAPI_FILE = "openapi.json"
WORKSPACE_PREFIX = "mlgate-triton-"
MAX_TEMP_DIR_LENGTH = 32
BINDING_MODULE = "predictor.triton.server"


@dataclass
class Reaped:
    """What :func:`reap` cleared (for the log and for tests)."""

    busy_pid: int | None = None  # a live binding process still serves this directory
    killed: list[int] = field(default_factory=list)
    unlinked: list[str] = field(default_factory=list)
    workspace_removed: bool = False

    def __bool__(self) -> bool:
        return bool(self.killed or self.unlinked or self.workspace_removed)


def write_json_atomic(path: Path, value: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def workspace_path(state_dir: Path) -> Path:
    """PyTriton's workspace for a replica: a short path in the temp directory.

    PyTriton puts Unix sockets in its workspace, and a socket path has at most 107
    bytes, which a workspace under a deep data dir exceeds ("AF_UNIX path too long").
    The name is derived from the state directory, so it is found again after a crash.
    """
    digest = hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:16]
    base = tempfile.gettempdir()
    if len(base) > MAX_TEMP_DIR_LENGTH:
        base = "/tmp"
    return Path(base) / f"{WORKSPACE_PREFIX}{digest}"


def record_binding(state_dir: Path, pid: int) -> None:
    """Written by the binding process before it starts anything that could leak."""
    write_json_atomic(state_dir / PID_FILE,
                      {"pid": pid, "workspace": str(workspace_path(state_dir))})


def shm_names_mapped(pids: Iterable[int]) -> set[str]:
    """Names of the ``/dev/shm`` segments (not yet unlinked) mapped by these processes."""
    prefix = f"{SHM_DIR}/"
    names: set[str] = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as maps:
                for line in maps:
                    path = line.rstrip("\n").split(maxsplit=5)[-1]
                    if path.startswith(prefix) and not path.endswith(" (deleted)"):
                        names.add(path[len(prefix):])
        except OSError:
            continue
    return names


def record_segments(state_dir: Path, names: set[str]) -> set[str]:
    """Add ``names`` to the recorded segments; returns the whole record."""
    path = state_dir / SEGMENTS_FILE
    known = set(read_json(path).get("segments", []))
    if not names <= known:
        known |= names
        write_json_atomic(path, {"segments": sorted(known)})
    return known


def _binding_alive(pid: int, state_dir: Path) -> bool:
    """Whether ``pid`` is a binding process serving out of ``state_dir`` (not a reused pid)."""
    try:
        cmdline = psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return BINDING_MODULE in cmdline and str(state_dir) in cmdline


def _orphans(workspace: Path) -> list[psutil.Process]:
    """Processes still running a binary or script out of ``workspace``."""
    marker = str(workspace) + os.sep
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if any(part.startswith(marker) for part in cmdline):
            found.append(proc)
    return found


def reap(state_dir: Path, *, skip_pid: int | None = None) -> Reaped:
    """Clear what a dead binding process left under ``state_dir``; no-op while it runs.

    ``skip_pid`` is the caller's own pid (a binding process reaping its predecessor).
    """
    state_dir = Path(state_dir).resolve()
    result = Reaped()
    binding = read_json(state_dir / PID_FILE)
    pid = binding.get("pid")
    if isinstance(pid, int) and pid != skip_pid and _binding_alive(pid, state_dir):
        log.warning("binding process %d still serves %s; not cleaning", pid, state_dir)
        result.busy_pid = pid
        return result
    workspace = workspace_path(state_dir)
    orphans = [p for p in _orphans(workspace) if p.pid != skip_pid]
    for proc in orphans:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
            result.killed.append(proc.pid)
    psutil.wait_procs(orphans, timeout=10)
    names = set(read_json(state_dir / SEGMENTS_FILE).get("segments", []))
    if isinstance(pid, int):
        with contextlib.suppress(OSError):
            names |= {n for n in os.listdir(SHM_DIR) if n.startswith(f"pytrtion{pid}-")}
    for name in sorted(names):
        if "/" in name or name in ("", ".", ".."):
            continue
        with contextlib.suppress(FileNotFoundError):
            (SHM_DIR / name).unlink()
            result.unlinked.append(name)
    if workspace.exists():
        shutil.rmtree(workspace, ignore_errors=True)
        result.workspace_removed = True
    for name in (READY_FILE, OPENAPI_FILE, SEGMENTS_FILE, PID_FILE):
        with contextlib.suppress(FileNotFoundError):
            (state_dir / name).unlink()
    if result:
        log.info("cleared leftovers of %s: killed %s, unlinked %s", state_dir, result.killed,
                 result.unlinked)
    return result
