"""What an InferenceJob does, decided without I/O: locations, names, shards, what is done,
what to retry, Request-IDs, and how a job ends.

A location is ``s3://bucket/prefix``, ``gs://bucket/prefix`` or an absolute local path
(``file:///abs`` is the same). Its *folder* is everything up to its last ``/``; an input
object's *relative name* is its key below the input's folder, and its output goes to
``<output folder><relative name>``, its errors to ``<output folder>_errors/<relative
name>.jsonl``. An output object exists only once it is complete (every backend writes
atomically), so "the output object exists" is what "done" means, on every run and every
runtime.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

SCHEMES = ("s3", "gs")
FILE_SCHEME = "file://"
ERRORS_DIR = "_errors/"
ERRORS_SUFFIX = ".jsonl"
HIDDEN_PREFIXES = ("_", ".")
REQUEST_ID_SAFE = re.compile(r"[^A-Za-z0-9._:-]")
MAX_OBJECT_ID = 52  # <job id (63)>-<object>-<row (10 digits)> stays within 128 characters

MODE_FULL = "full"
MODE_RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Location:
    """``scheme`` is ``file``, ``s3`` or ``gs``; ``bucket`` is empty for ``file``; ``prefix``
    is the key prefix in the bucket, or the absolute path for ``file``."""

    scheme: str
    bucket: str
    prefix: str

    @property
    def folder(self) -> str:
        return self.prefix[:self.prefix.rfind("/") + 1]

    @property
    def name_prefix(self) -> str:
        """The part of the prefix below the folder that names must start with."""
        return self.prefix[len(self.folder):]

    def as_folder(self) -> Location:
        """The location as a folder (an output): ``out`` and ``out/`` both mean ``out/``."""
        if self.prefix.endswith("/") or self.prefix == "":
            return self
        return Location(self.scheme, self.bucket, self.prefix + "/")

    def __str__(self) -> str:
        if self.scheme == "file":
            return self.prefix
        return f"{self.scheme}://{self.bucket}/{self.prefix}"


def parse_location(text: str) -> Location:
    """``ValueError`` with the reason when ``text`` is not a location."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("must be a local path, s3://bucket/prefix or gs://bucket/prefix")
    text = text.strip()
    if text.startswith(FILE_SCHEME):
        text = text[len(FILE_SCHEME):]
    scheme, sep, rest = text.partition("://")
    if sep:
        if scheme not in SCHEMES:
            raise ValueError(f"scheme {scheme!r} is not supported; use a local path, s3:// or "
                             "gs://")
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise ValueError(f"{text!r} names no bucket")
        return Location(scheme, bucket, prefix)
    if not text.startswith("/"):
        raise ValueError(f"the local path {text!r} must be absolute (the CLI resolves it "
                         "from the manifest's directory)")
    if "/../" in text + "/" or "/./" in text + "/":
        raise ValueError(f"the local path {text!r} must not contain '.' or '..' segments")
    return Location("file", "", text)


def location_errors(name: str, value: object) -> list[str]:
    if value is None or value == "":
        return [f"{name} is required: a local path, s3://bucket/prefix or gs://bucket/prefix"]
    try:
        parse_location(value)  # type: ignore[arg-type]
    except ValueError as exc:
        return [f"{name} {exc}"]
    return []


def overlap_error(input_text: str, output_text: str) -> str | None:
    """Outputs inside the input would be read as input by the next run; outputs in the
    input's own folder would overwrite the input objects."""
    source, target = parse_location(input_text), parse_location(output_text).as_folder()
    if (source.scheme, source.bucket) != (target.scheme, target.bucket):
        return None
    if target.prefix.startswith(source.prefix):
        return (f"the output {target} is inside the input {source}: its objects would be "
                "read as input by the next run")
    if target.prefix == source.folder:
        return (f"the output {target} is the input's own folder: outputs would overwrite the "
                "input objects; write them to another prefix")
    return None


def relative_names(names: Iterable[str], name_prefix: str) -> list[str]:
    """The input objects: ``names`` relative to the input's folder that start with
    ``name_prefix``, sorted; hidden ones (a segment starting with ``_`` or ``.``) and
    directory markers are skipped."""
    out = set()
    for name in names:
        if not name.startswith(name_prefix) or name.endswith("/"):
            continue
        if any(part.startswith(HIDDEN_PREFIXES) or part == "" for part in name.split("/")):
            continue
        out.add(name)
    return sorted(out)


def errors_name(name: str) -> str:
    return f"{ERRORS_DIR}{name}{ERRORS_SUFFIX}"


def object_of_errors(errors_key: str) -> str | None:
    """The relative name an ``_errors/...`` key (relative to the output folder) is about."""
    if not errors_key.startswith(ERRORS_DIR) or not errors_key.endswith(ERRORS_SUFFIX):
        return None
    return errors_key[len(ERRORS_DIR):-len(ERRORS_SUFFIX)] or None


def shard_of(name: str, shards: int) -> int:
    """Which runner (0..shards-1) takes the object: a stable hash of its relative name."""
    digest = hashlib.sha256(name.encode()).digest()
    return int.from_bytes(digest[:8], "big") % shards


def object_id(name: str) -> str:
    """The object's part of a Request-ID: the relative name in the Request-ID alphabet, long
    names shortened with a hash so two of them never meet."""
    safe = REQUEST_ID_SAFE.sub("_", name)
    if len(safe) <= MAX_OBJECT_ID and safe == name:
        return safe
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{safe[:MAX_OBJECT_ID - 9]}.{digest}"


def request_id(job_id: str, name: str, row: int) -> str:
    """``<job>-<object>-<row>``: the call whose first row is ``row`` of object ``name``."""
    return f"{job_id}-{object_id(name)}-{row}"


@dataclass(frozen=True, slots=True)
class ObjectTask:
    name: str
    mode: str
    """``full``: predict every row; ``retry``: only the rows listed in its errors object."""


@dataclass(frozen=True, slots=True)
class Plan:
    todo: tuple[ObjectTask, ...]
    done: tuple[str, ...]
    """Objects already complete: their counts are read back, nothing is predicted."""


def plan_objects(names: Iterable[str], outputs: Iterable[str], errors: Iterable[str],
                 shard: int, shards: int, retry_errors: bool) -> Plan:
    """This runner's share of the input, split into what to do and what is done.

    ``outputs``/``errors``: relative names that have an output / an errors object now. An
    object without output is done in full (a crash before its commit, or a new object); with
    ``retry_errors`` an object with both is redone for its listed rows only.
    """
    has_output, has_errors = set(outputs), set(errors)
    todo: list[ObjectTask] = []
    done: list[str] = []
    for name in names:
        if shard_of(name, shards) != shard:
            continue
        if name not in has_output:
            todo.append(ObjectTask(name, MODE_FULL))
        elif retry_errors and name in has_errors:
            todo.append(ObjectTask(name, MODE_RETRY))
        else:
            done.append(name)
    return Plan(tuple(todo), tuple(done))


def batches(rows: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of at most ``size`` rows covering ``rows`` rows in order."""
    return [(start, min(start + size, rows)) for start in range(0, rows, size)]


def merge_rows(existing: Mapping[int, T], new: Mapping[int, T]) -> list[T]:
    """Output rows by row id, in input order; a retried row replaces an earlier copy, so
    merging the same rows twice never duplicates one."""
    merged = {**existing, **new}
    return [merged[row] for row in sorted(merged)]


# -- how a call's answer is treated ----------------------------------------------------------

RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504})
FATAL_STATUSES = frozenset({401, 403, 404})


def call_outcome(status: int) -> str:
    """``ok``; ``retry`` (the gateway or a replica could not answer now: back off, try the
    same call again); ``fatal`` (the job's calls are refused as such: no row can help);
    ``split`` (the model refused this input: split the call to find the rows it refuses)."""
    if 200 <= status < 300:
        return "ok"
    if status in RETRYABLE_STATUSES:
        return "retry"
    if status in FATAL_STATUSES:
        return "fatal"
    return "split"


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds before retry ``attempt`` (1, 2, ...): doubling from ``base``, capped."""
    return min(cap, base * 2 ** max(0, attempt - 1))


# -- how a job ends --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counts:
    objects_total: int = 0
    objects_done: int = 0
    objects_failed: int = 0
    rows_total: int = 0
    rows_done: int = 0
    rows_failed: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, ...]:
        return (self.objects_total, self.objects_done, self.objects_failed, self.rows_total,
                self.rows_done, self.rows_failed)


def over_error_ceiling(counts: Counts, max_error_rate: float) -> str | None:
    """Why the job must fail now, or None: once more rows failed than ``max_error_rate`` of
    all rows, no later success can bring the rate back under it."""
    if counts.rows_total and counts.rows_failed > max_error_rate * counts.rows_total:
        return (f"{counts.rows_failed} of {counts.rows_total} rows failed, over maxErrorRate "
                f"{max_error_rate:g}; see _errors/ in the output")
    return None


def final_state(counts: Counts, max_error_rate: float) -> tuple[str, str]:
    """``(state, reason)`` of a job whose runners all finished their share."""
    ceiling = over_error_ceiling(counts, max_error_rate)
    if ceiling:
        return "Failed", ceiling
    if counts.objects_total and counts.objects_failed == counts.objects_total:
        return "Failed", f"none of the {counts.objects_total} input objects could be read"
    if counts.rows_failed or counts.objects_failed:
        parts = []
        if counts.rows_failed:
            parts.append(f"{counts.rows_failed} of {counts.rows_total} rows failed")
        if counts.objects_failed:
            parts.append(f"{counts.objects_failed} of {counts.objects_total} objects could not "
                         "be read")
        return "SucceededWithErrors", "; ".join(parts) + " (listed in _errors/ in the output)"
    return "Succeeded", ""
