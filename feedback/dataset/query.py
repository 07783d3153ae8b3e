"""What a data set export asks for, and where its rows go (pure).

One row per predicted input row. Columns, in order: ``request_id``, ``row`` (the input
row's index in its request), ``deployment_id``, ``time`` (of the prediction, UTC), one
column per input feature (named from the request's ``columns``, typed from its values),
``prediction``, ``label`` (the label of that row: null without feedback or when the feedback
holds no readable label), ``feedback_time`` and ``feedback`` (the raw feedback JSON). The
partition columns ``model_name``, ``model_version``, ``year``, ``month``, ``day`` are in the
path, hive style::

    <out>/model_name=wine/model_version=1.0/year=2026/month=11/day=25/part-10.parquet

Each file holds the predictions of one UTC hour (``part-HH``). The range is widened to
whole hours, so a run rewrites every hour it touches completely: re-running a range rewrites
the same files (no duplicates), and a run with ``--since`` of the last one rewrites only the
hours from there on (the last run's unfinished hour included, now with the labels that came
since). Feedback is joined by model name and Request-ID whenever it came (the latest one,
when corrected).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from storage import check_segment

from ..paths import compile_path
from ..spec import TASKS

FORMATS = ("parquet", "jsonl")
ENGINES = ("duckdb", "spark")
SUFFIX = {"parquet": ".parquet", "jsonl": ".jsonl"}
FIXED_COLUMNS = ("request_id", "row", "deployment_id", "time", "prediction", "label",
                 "feedback_time", "feedback")
PARTITION_COLUMNS = ("model_name", "model_version", "year", "month", "day")
FEATURE_PREFIX = "feature_"
"""Prefix of a feature whose name is taken by a fixed or partition column (``feature_time``)."""
HOUR = timedelta(hours=1)


class DatasetError(ValueError):
    """The export cannot run as asked (bad query, unreadable output)."""


class MissingExtra(DatasetError):
    """DuckDB (the ``dataset`` extra) or pyspark (``spark``) is not installed."""


@dataclass(frozen=True)
class ExportQuery:
    model_name: str
    model_version: str | None = None
    deployment_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    labelled_only: bool = False
    task: str = "regression"
    """How predictions and labels are typed: numbers (regression) or classes (text)."""
    prediction: str | None = None
    """JSONPath into the answers; None: ``$.prediction``, ``$.predictions``, else a single
    ``outputs[0].data``."""
    label: str | None = None
    """JSONPath into the feedback; None: its only numeric field (its only field, for a
    classification)."""

    def __post_init__(self) -> None:
        try:
            check_segment("model name", self.model_name)
            if self.model_version is not None:
                check_segment("model version", self.model_version)
        except ValueError as exc:
            raise DatasetError(str(exc)) from None
        if self.task not in TASKS:
            raise DatasetError(f"task must be one of {', '.join(TASKS)}, got {self.task!r}")
        for name in ("prediction", "label"):
            value = getattr(self, name)
            if value is not None:
                try:
                    compile_path(value)
                except ValueError as exc:
                    raise DatasetError(f"{name} {exc}") from None
        for bound in (self.since, self.until):
            if bound is not None and bound.tzinfo is None:
                raise DatasetError("since and until must carry a time zone")
        if self.since and self.until and self.until <= self.since:
            raise DatasetError("until must be after since")

    @property
    def first_hour(self) -> datetime | None:
        """``since`` rounded down to its hour."""
        if self.since is None:
            return None
        return self.since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)

    @property
    def end_hour(self) -> datetime | None:
        """``until`` rounded up to an hour."""
        if self.until is None:
            return None
        floor = self.until.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return floor if floor == self.until else floor + HOUR

    def wants_hour(self, hour: datetime, slack: timedelta = timedelta(0)) -> bool:
        first, end = self.first_hour, self.end_hour
        return (first is None or hour >= first - slack) and (end is None or hour < end)


def partition_path(model_name: str, model_version: str, year: int, month: int, day: int) -> str:
    return (f"model_name={model_name}/model_version={model_version}/"
            f"year={year:04d}/month={month:02d}/day={day:02d}")


def file_name(hour: int, fmt: str) -> str:
    return f"part-{hour:02d}{SUFFIX[fmt]}"


def feature_column(name: str) -> str:
    """A feature's column name: its own, unless a fixed or partition column has it."""
    taken = set(FIXED_COLUMNS) | set(PARTITION_COLUMNS) | {"hour"}
    return f"{FEATURE_PREFIX}{name}" if name in taken else name
