"""Showing a wait to the person waiting: in Jupyter, on a terminal, or as plain lines.

:func:`default_progress` picks by where the code runs:

- in a Jupyter kernel, one output area updated in place (``IPython.display`` with a display
  id: no widget extension needed), with an HTML progress bar for counted work;
- on a terminal, rich's progress bar for counted work (a job's rows: done/total, rows/s,
  errors, time left) and one line per change otherwise;
- elsewhere (a log file, CI), plain lines: one per change, and for counted work at most one
  per few seconds unless the state changes.

Each is a *sink factory*: the SDK makes one sink per wait and feeds it
:class:`~mlgate._steps.Progress` steps; the last has ``done=True``.
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from ._steps import Progress

Sink = Callable[[Progress], None]
SinkFactory = Callable[[], Sink]


def in_jupyter() -> bool:
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None) if shell is not None else None
    ip = get() if get else None
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def line_sink(stream: TextIO | None = None,
              clock: Callable[[], float] = time.monotonic) -> Sink:
    """One line per change of the text (what ``mlgate ... --wait`` prints off a terminal)."""
    last = {"text": "", "state": None, "at": float("-inf")}

    def sink(step: Progress) -> None:
        now = clock()
        if not step.text or step.text == last["text"]:
            return
        if not step.done and step.state == last["state"] and now - last["at"] < step.throttle:
            return
        print(step.text, file=stream or sys.stderr, flush=True)
        last.update(text=step.text, state=step.state, at=now)

    return sink


def terminal_sink(stream: TextIO | None = None) -> Sink:
    """rich's bar for counted work; lines for the rest."""
    from rich.console import Console
    from rich.progress import BarColumn, TaskProgressColumn, TextColumn
    from rich.progress import Progress as Bar

    out = stream or sys.stderr
    lines = line_sink(out)
    bar: list[Any] = []

    def sink(step: Progress) -> None:
        if step.total is None and not bar:
            lines(step)
            return
        if not bar:
            progress = Bar(BarColumn(bar_width=24), TaskProgressColumn(),
                           TextColumn("{task.description}"), console=Console(file=out),
                           transient=False)
            bar.extend([progress, progress.add_task(step.text, total=step.total or None)])
            progress.start()
        progress, task = bar
        progress.update(task, description=step.text, completed=step.completed or 0,
                        total=step.total or None)
        if step.done:
            progress.stop()

    return sink


def jupyter_sink() -> Sink:
    from IPython.display import HTML, display

    handle: list[Any] = []

    def view(step: Progress) -> Any:
        meter = ""
        if step.total:
            meter = (f"<progress value='{step.completed or 0}' max='{step.total}' "
                     "style='width:16em;margin-right:1em'></progress>")
        mark = "" if step.done else "&#8987; "
        return HTML(f"<div style='font-family:monospace'>{meter}{mark}"
                    f"{html.escape(step.text)}</div>")

    def sink(step: Progress) -> None:
        if not handle:
            handle.append(display(view(step), display_id=True))
        else:
            handle[0].update(view(step))

    return sink


def default_progress(stream: TextIO | None = None) -> SinkFactory:
    """Jupyter, a terminal, or plain lines on ``stream`` (default standard error)."""
    if in_jupyter():
        return jupyter_sink
    out = stream or sys.stderr
    if out is not None and out.isatty():
        return lambda: terminal_sink(out)
    return lambda: line_sink(out)
