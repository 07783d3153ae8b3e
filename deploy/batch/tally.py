"""A job's counts read back from its output: what is committed, whoever committed it.

The runner counts the objects a previous run finished this way; a runtime whose runners
cannot report to it (pods) counts the whole job this way when they are done.
"""

from __future__ import annotations

from typing import Any

import orjson

from deploy.batch.formats import UnreadableObject, read_output
from deploy.batch.locations import Place
from deploy.control.job_plan import Counts, errors_name, object_of_errors, relative_names
from storage import ObjectNotFound


async def tally(source: Place, target: Place, fmt: str, name_prefix: str) -> Counts:
    """The job's counts as its output holds them: objects with an output are done (their
    rows and listed errors counted), objects with only an errors object failed."""
    names = relative_names(await source.names(name_prefix), name_prefix)
    present = set(await target.names())
    with_errors = {n for n in map(object_of_errors, present) if n is not None}
    counts = Counts(objects_total=len(names))
    for name in names:
        if name in present:
            counts += await committed_counts(target, fmt, name, name in with_errors)
        elif name in with_errors:
            counts += Counts(objects_failed=1)
    return counts


async def committed_counts(target: Place, fmt: str, name: str, has_errors: bool) -> Counts:
    """A done object's rows, read back from its output and errors objects."""
    rows = await output_rows(target, fmt, name)
    listed = await listed_errors(target, name) if has_errors else []
    return Counts(objects_done=1, rows_total=len(rows) + len(listed), rows_done=len(rows),
                  rows_failed=len(listed))


async def output_rows(target: Place, fmt: str, name: str) -> dict[int, list[Any]]:
    try:
        return read_output(fmt, await target.read(name))[1]
    except (UnreadableObject, ObjectNotFound):
        return {}


async def listed_errors(target: Place, name: str) -> list[dict[str, Any]]:
    try:
        data = await target.read(errors_name(name))
    except ObjectNotFound:
        return []
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]
