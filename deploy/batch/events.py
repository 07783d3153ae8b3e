"""What a runner tells whoever started it: one JSON object per line on stdout.

``{"event": "progress", ...}`` carries the runner's absolute counts for its share (so a
lost line costs nothing), the rows it predicted and saw refused in this run (counters for
Prometheus), and its rate; ``{"event": "end", "outcome": "done" | "failed", "reason":
...}`` is the last line. A runner that exits without an ``end`` line crashed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson

from deploy.control.job_plan import Counts

PROGRESS = "progress"
END = "end"
OUTCOME_DONE = "done"
OUTCOME_FAILED = "failed"


@dataclass(frozen=True)
class Report:
    counts: Counts
    predicted: int = 0
    refused: int = 0
    rows_per_second: float = 0.0


@dataclass(frozen=True)
class End:
    outcome: str
    reason: str = ""


def encode(event: Report | End) -> bytes:
    if isinstance(event, Report):
        body: dict[str, Any] = {"event": PROGRESS, **asdict(event.counts),
                                "predicted": event.predicted, "refused": event.refused,
                                "rowsPerSecond": round(event.rows_per_second, 1)}
    else:
        body = {"event": END, "outcome": event.outcome, "reason": event.reason}
    return orjson.dumps(body) + b"\n"


def decode(line: bytes) -> Report | End | None:
    """The event of one line; None for anything else (a stray print, a torn line)."""
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    try:
        if doc.get("event") == PROGRESS:
            counts = Counts(**{name: int(doc[name]) for name in Counts.__dataclass_fields__})
            return Report(counts, int(doc["predicted"]), int(doc["refused"]),
                          float(doc["rowsPerSecond"]))
        if doc.get("event") == END:
            return End(str(doc["outcome"]), str(doc.get("reason") or ""))
    except (KeyError, TypeError, ValueError):
        return None
    return None
