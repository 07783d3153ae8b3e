"""``mlgate route promote|abort|pause|resume ID`` and ``mlgate route status ID [--watch]``:
a route's canary rollout (its ``spec.analysis``), through the SDK's ``client.rollout(ID)``.

``status`` prints where the rollout is and its last judgement (``-o json``: the API's
document). ``--watch`` follows it until it ends: on a terminal a live view (the weights as a
bar, the phase, the step, failed checks, the message and every metric's verdict), elsewhere
one line per change; exit 0 when the canary was promoted, 1 when the rollout Failed (or
``--timeout`` passed). The actions print the rollout's state after them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

import mlgate
from mlgate.objects import Rollout, judgement_rows
from mlgate.progress import Progress, Sink, SinkFactory, line_sink

Run = Callable[..., int]
ACTIONS = {"promote": "give the canary 100 now (also after a Failed rollout)",
           "abort": "roll back to the stable target now (the rollout ends Failed)",
           "pause": "keep the weights, judge nothing, stop the deadline's clock",
           "resume": "continue a paused rollout at its step"}
VERDICT_STYLES = {"pass": "green", "fail": "bold red", "inconclusive": "yellow"}
PHASE_STYLES = {"Succeeded": "bold green", "Failed": "bold red", "Paused": "cyan",
                "Inconclusive": "yellow", "Progressing": "bold"}


def add_commands(cmds: argparse._SubParsersAction, conn: argparse.ArgumentParser,
                 run: Run) -> None:
    """Add the rollout commands to ``mlgate route``; ``run(args, body, progress=None)`` runs
    ``body(client)`` with the SDK client of ``--url``/``--token``."""
    for action, what in ACTIONS.items():
        p = cmds.add_parser(action, parents=[conn], help=f"canary rollout: {what}")
        p.add_argument("route", help="the route id")
        p.set_defaults(func=lambda args, action=action: _act(args, action, run), kind="route")
    p = cmds.add_parser("status", parents=[conn], help="a route's canary rollout: where it "
                        "is and its last judgement")
    p.add_argument("route", help="the route id")
    p.add_argument("--watch", action="store_true", help="follow it live until it is "
                   "Succeeded (exit 0) or Failed (exit 1)")
    p.add_argument("--timeout", type=float, default=None,
                   help="with --watch: give up after this many seconds (exit 1)")
    p.add_argument("-o", "--output-format", dest="output", choices=("text", "json"),
                   default="text", help="text (default) or json")
    p.set_defaults(func=lambda args: _status(args, run), kind="route")


def _act(args: argparse.Namespace, action: str, run: Run) -> int:
    def body(client: mlgate.Client) -> int:
        rollout = getattr(client.rollout(args.route), action)()
        print(rollout.describe())
        return 0

    return run(args, body)


def _status(args: argparse.Namespace, run: Run) -> int:
    def body(client: mlgate.Client) -> int:
        control = client.rollout(args.route)
        if not args.watch:
            rollout = control.status()
            print(json.dumps(rollout.raw, indent=2) if args.output == "json" else rollout)
            return 0
        try:
            rollout = control.watch(timeout=args.timeout)
        except mlgate.WaitTimeout as exc:
            print(f"mlgate: {exc}", file=sys.stderr)
            return 1
        if args.output == "json":
            print(json.dumps(rollout.raw, indent=2))
        return 0 if rollout.succeeded else 1

    progress = None
    if args.watch and args.output == "text":
        progress = live_view(sys.stdout)
    return run(args, body, progress=progress)


def live_view(stream: TextIO) -> SinkFactory:
    """The display of ``--watch``: rich's live view on a terminal, else one line per change."""
    if stream.isatty():
        return lambda: _live_sink(stream)
    return lambda: line_sink(stream)


def _live_sink(stream: TextIO) -> Sink:
    from rich.console import Console
    from rich.live import Live

    console = Console(file=stream)
    live: list[Any] = []

    def sink(step: Progress) -> None:
        view = render(Rollout(step.detail)) if step.detail else step.text
        if not live:
            live.append(Live(view, console=console, refresh_per_second=4, transient=False))
            live[0].start()
        live[0].update(view, refresh=True)
        if step.done:
            live[0].stop()

    return sink


def render(rollout: Rollout) -> Any:
    """A rollout as rich renders it: the weights as a bar, where it is, the last judgement."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    head = Text.assemble(
        (f"route {rollout.route_id}", "bold"), f": canary {rollout.canary} over stable "
        f"{rollout.stable}  ", (rollout.phase, PHASE_STYLES.get(rollout.phase, "")),
        f" at step {rollout.step} of {rollout.steps}")
    weights = Table.grid(padding=(0, 1))
    weights.add_row(Text(f"{rollout.stable} {100 - rollout.canary_weight:>3}%"),
                    ProgressBar(total=100, completed=rollout.canary_weight, width=40),
                    Text(f"{rollout.canary_weight:>3}% {rollout.canary}"))
    raw = rollout.raw
    checks = Text(f"failed checks {rollout.failed_checks} of {rollout.threshold}"
                  + (f"; judged every {raw['interval']}" if raw.get("interval") else "")
                  + (f"; the step fails at {raw['deadline']} unless it passes"
                     if raw.get("deadline") else ""))
    parts: list[Any] = [head, weights, checks, Text(rollout.message, style="italic")]
    judged = rollout.last_judgement
    if judged:
        table = Table(title=f"last judgement at {judged.get('at')}: {judged.get('verdict')}",
                      title_justify="left", show_edge=False)
        rows = judgement_rows(judged)
        for column in rows[0] if rows else ():
            table.add_column(column, justify="left" if column in ("METRIC", "VERDICT")
                             else "right")
        for row in rows:
            cells = list(row.values())
            cells[1] = Text(cells[1], style=VERDICT_STYLES.get(cells[1], ""))
            table.add_row(*cells)
        parts.append(table)
    return Group(*parts)
