"""Showing a wait to the person waiting: in Jupyter, in a terminal, or as plain lines.

:func:`default_progress` picks by where the code runs:

- in a Jupyter kernel, one output area updated in place (``IPython.display`` with a display
  id: no widget extension needed);
- on a terminal, a rich spinner with the latest status on standard error;
- otherwise (a log file, CI), one line on standard error per change.

Each returns a *sink factory*: the SDK makes one sink per wait and feeds it
:class:`~mlgate._steps.Progress` steps; the last has ``done=True``.
"""

from __future__ import annotations

import html
import sys
from collections.abc import Callable
from typing import Any, TextIO

from ._steps import Progress

Sink = Callable[[Progress], None]


def in_jupyter() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    get = getattr(shell, "get_ipython", None)
    ip = get() if get else None
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def line_sink(stream: TextIO | None = None) -> Sink:
    """One line per change of the text (what ``mlgate ... --wait`` prints)."""
    last = [""]

    def sink(step: Progress) -> None:
        if step.text and step.text != last[0]:
            print(step.text, file=stream or sys.stderr, flush=True)
            last[0] = step.text

    return sink


def terminal_sink(stream: TextIO | None = None) -> Sink:
    from rich.console import Console

    console = Console(file=stream or sys.stderr)
    status: list[Any] = []

    def sink(step: Progress) -> None:
        if not status:
            status.append(console.status(step.text))
            status[0].start()
        if step.done:
            status[0].stop()
            if step.text:
                console.print(step.text, highlight=False)
            return
        status[0].update(step.text)

    return sink


def jupyter_sink() -> Sink:
    from IPython.display import HTML, display

    handle: list[Any] = []

    def show(text: str, busy: bool) -> Any:
        mark = "&#8987; " if busy else ""
        return HTML(f"<pre style='margin:0'>{mark}{html.escape(text)}</pre>")

    def sink(step: Progress) -> None:
        if not handle:
            handle.append(display(show(step.text, not step.done), display_id=True))
        else:
            handle[0].update(show(step.text, not step.done))

    return sink


def default_progress() -> Callable[[], Sink]:
    if in_jupyter():
        return jupyter_sink
    if sys.stderr is not None and sys.stderr.isatty():
        return terminal_sink
    return line_sink
