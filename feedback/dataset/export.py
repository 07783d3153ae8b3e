"""Exporting a training data set: records in, hive-partitioned Parquet or JSON Lines out.

``export`` gathers the records (``sources``), has an engine build the rows and write them
partitioned by hour into a staging directory (DuckDB here, or Spark: ``feedback.dataset.spark``),
then puts one file per hour where ``out`` says (``query`` documents the layout): a local
directory (each file written beside its place, then renamed into it) or a bucket.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from storage import Backend

from . import duck
from .query import ENGINES, FORMATS, SUFFIX, DatasetError, ExportQuery, file_name, partition_path
from .sources import Sources, gather_sources

_PARTITION = re.compile(r"model_name=([^/]+)/model_version=([^/]+)/year=(\d+)/month=(\d+)/"
                        r"day=(\d+)/hour=(\d+)$")


@dataclass(frozen=True)
class Target:
    """Where the files go: a local directory, or a key prefix in a bucket."""

    directory: Path | None = None
    backend: Backend | None = None
    prefix: str = ""


@dataclass
class ExportResult:
    files: list[str] = field(default_factory=list)
    rows: int = 0


Engine = Callable[[Sources, ExportQuery, Path, str], int]
"""``(sources, query, staging dir, format) -> rows``: writes ``<staging>/model_name=.../
model_version=.../year=.../month=.../day=.../hour=.../<files>``."""


def duckdb_engine(sources: Sources, query: ExportQuery, staging: Path, fmt: str) -> int:
    con = duck._connect()
    try:
        columns = duck.prepare(con, sources, query)
        selected = ", ".join(duck._ident(c) for c in columns)
        [(rows,)] = con.execute(f"""COPY (SELECT {selected}, hour FROM export_rows)
                                    TO {duck._literal(str(staging))}
                                    (FORMAT {'PARQUET' if fmt == 'parquet' else 'JSON'},
                                     PARTITION_BY (model_name, model_version, year, month,
                                                   day, hour),
                                     OVERWRITE_OR_IGNORE true)""").fetchall()
        return rows
    finally:
        con.close()


def _engine(name: str) -> Engine:
    if name == "spark":
        from .spark import spark_engine

        return spark_engine
    return duckdb_engine


def _combine(parts: list[Path], fmt: str, dest: Path) -> None:
    """One file of the hour from what the engine wrote for it (usually one file already)."""
    if len(parts) == 1:
        shutil.move(parts[0], dest)
        return
    if fmt == "jsonl":
        with open(dest, "wb") as out:
            for part in parts:
                out.write(part.read_bytes())
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.concat_tables([pq.read_table(p, partitioning=None) for p in parts]),
                   dest)


def _staged(staging: Path, fmt: str) -> dict[tuple[str, int], list[Path]]:
    """``(partition path, hour) -> files`` the engine wrote."""
    found: dict[tuple[str, int], list[Path]] = {}
    suffixes = (".parquet",) if fmt == "parquet" else (".json", ".jsonl")
    for path in sorted(staging.rglob("*")):
        if not path.is_file() or path.suffix not in suffixes or path.name.startswith((".", "_")):
            continue
        m = _PARTITION.search(path.parent.relative_to(staging).as_posix())
        if m is None:
            continue
        name, version, year, month, day, hour = m.groups()
        key = (partition_path(name, version, int(year), int(month), int(day)), int(hour))
        found.setdefault(key, []).append(path)
    return found


async def _place(staging: Path, fmt: str, target: Target) -> list[str]:
    placed = []
    work = staging.parent / "files"
    work.mkdir(exist_ok=True)
    for (partition, hour), parts in sorted(_staged(staging, fmt).items()):
        name = f"{partition}/{file_name(hour, fmt)}"
        combined = work / f"{len(placed)}{SUFFIX[fmt]}"
        await asyncio.to_thread(_combine, parts, fmt, combined)
        if target.directory is not None:
            dest = target.directory / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            temp = dest.with_name(f".{dest.name}.tmp")
            await asyncio.to_thread(shutil.move, combined, temp)
            temp.replace(dest)
            placed.append(str(dest))
        else:
            assert target.backend is not None
            key = f"{target.prefix.strip('/')}/{name}" if target.prefix.strip("/") else name
            await target.backend.put(key, await asyncio.to_thread(combined.read_bytes))
            placed.append(key)
    return placed


async def export(backend: Backend, prefix: str, query: ExportQuery, target: Target,
                 fmt: str = "parquet", engine: str = "duckdb") -> ExportResult:
    """Export the rows ``query`` asks for from the records under ``prefix`` to ``target``."""
    if fmt not in FORMATS:
        raise DatasetError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if engine not in ENGINES:
        raise DatasetError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    run = _engine(engine)
    with tempfile.TemporaryDirectory(prefix="mlgate-export-") as tmp:
        work = Path(tmp)
        sources = await gather_sources(backend, prefix, query, work)
        staging = work / "staging"
        rows = await asyncio.to_thread(run, sources, query, staging, fmt)
        files = await _place(staging, fmt, target) if rows else []
    return ExportResult(files, rows)


async def export_file(backend: Backend, prefix: str, query: ExportQuery, path: Path,
                      fmt: str = "parquet") -> int:
    """The rows in one file at ``path`` (``model_name``, ``model_version`` as columns; no
    partitions): what ``GET /api/v1/dataset`` streams. Returns the row count."""
    if fmt not in FORMATS:
        raise DatasetError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    with tempfile.TemporaryDirectory(prefix="mlgate-export-") as tmp:
        sources = await gather_sources(backend, prefix, query, Path(tmp))
        return await asyncio.to_thread(_single, sources, query, path, fmt)


def _single(sources: Sources, query: ExportQuery, path: Path, fmt: str) -> int:
    con = duck._connect()
    try:
        columns = duck.prepare(con, sources, query)
        keep = [c for c in columns if c not in ("year", "month", "day")]
        selected = ", ".join(duck._ident(c) for c in keep)
        [(rows,)] = con.execute(
            f"""COPY (SELECT {selected} FROM export_rows ORDER BY time, request_id, row)
                TO {duck._literal(str(path))}
                (FORMAT {'PARQUET' if fmt == 'parquet' else 'JSON'})""").fetchall()
        return rows
    finally:
        con.close()
