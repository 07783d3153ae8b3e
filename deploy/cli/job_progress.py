"""Following an inference job: a progress bar on a terminal, plain lines otherwise.

Both show what ``GET /api/v1/batch/job/<id>`` says: rows done (predicted or failed) of
the total, rows/s, errors, and the time left at that rate. The bar is rich's; the lines
(for logs and CI) come at most every few seconds, and whenever the state changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn

LINE_INTERVAL = 5.0


def figures(job: dict[str, Any]) -> dict[str, Any]:
    """What the views show, from a job as the API answers it."""
    status = job.get("status", {})
    done = int(status.get("rowsDone", 0)) + int(status.get("rowsFailed", 0))
    total = max(int(status.get("rowsTotal", 0)), done)
    rate = float(status.get("rowsPerSecond", 0.0))
    eta = (total - done) / rate if rate > 0 and total > done else None
    errors = int(status.get("rowsFailed", 0)) + int(status.get("objectsFailed", 0))
    return {"state": status.get("state", ""), "done": done, "total": total, "rate": rate,
            "eta": eta, "errors": errors, "reason": status.get("reason", "")}


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    seconds = round(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def line(job_id: str, f: dict[str, Any]) -> str:
    percent = f"{100 * f['done'] / f['total']:.0f}%" if f["total"] else "-"
    return (f"{job_id}: {f['state']} {f['done']}/{f['total']} rows ({percent}), "
            f"{f['rate']:,.0f} rows/s, {f['errors']} error{'s' if f['errors'] != 1 else ''}, "
            f"ETA {format_eta(f['eta'])}")


class View(Protocol):
    def show(self, job: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class Lines:
    """Plain lines: one when the state changes, else at most one per ``interval``."""

    def __init__(self, job_id: str, out: TextIO, interval: float = LINE_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.job_id = job_id
        self.out = out
        self.interval = interval
        self.clock = clock
        self._state = ""
        self._printed = ""
        self._at = float("-inf")

    def show(self, job: dict[str, Any]) -> None:
        f = figures(job)
        text = line(self.job_id, f)
        now = self.clock()
        if text != self._printed and (f["state"] != self._state or now - self._at >= self.interval):
            print(text, file=self.out, flush=True)
            self._printed, self._state, self._at = text, f["state"], now

    def close(self) -> None:
        return None


class Bar:
    """rich's progress bar: rows done/total, rows/s, errors, ETA."""

    def __init__(self, job_id: str, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), TextColumn("{task.fields[state]}"),
            BarColumn(bar_width=24), TextColumn("{task.fields[rows]} rows"),
            TextColumn("{task.fields[rate]} rows/s"), TextColumn("{task.fields[errors]}"),
            TextColumn("ETA {task.fields[eta]}"), console=console, transient=False)
        self.task: TaskID = self.progress.add_task(job_id, total=None, state="", rows="0/?",
                                                   rate="0", errors="0 errors", eta="-:--:--")
        self.progress.start()

    def show(self, job: dict[str, Any]) -> None:
        f = figures(job)
        self.progress.update(
            self.task, completed=f["done"], total=f["total"] or None, state=f["state"],
            rows=f"{f['done']}/{f['total'] or '?'}", rate=f"{f['rate']:,.0f}",
            eta=format_eta(f["eta"]),
            errors=f"{f['errors']} error{'s' if f['errors'] != 1 else ''}")

    def close(self) -> None:
        self.progress.stop()


def make_view(job_id: str, out: TextIO) -> View:
    console = Console(file=out)
    if console.is_terminal:
        return Bar(job_id, console)
    return Lines(job_id, out)
