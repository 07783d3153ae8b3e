"""``mlgate dataset export``: a training data set from the joined records, written as
hive-partitioned Parquet or JSON Lines to a directory or a bucket.

    mlgate dataset export --model NAME [--version V] [--deployment ID]
        [--since ... --until ...] [--labelled-only] --format parquet|jsonl
        --out DIR|s3://BUCKET/PREFIX|gs://BUCKET/PREFIX [--engine duckdb|spark]

Reads the records where ``mlgate up`` writes them (same ``--config``, ``MLGATE_*`` and
``--data-dir``), like ``mlgate records``; an ``s3://`` or ``gs://`` output uses the same
endpoint and region settings as the storage. How predictions and labels are read comes from
``--task``, ``--prediction``, ``--label``, else from the deployment's ``spec.quality`` when
the data dir holds the state store, else the defaults the live join infers. Rows and layout:
``feedback.dataset.query``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from deploy.config import ConfigError, Settings, load_settings
from deploy.control.quality import quality_spec
from storage import StorageError, make_backend, parse_bound

FORMATS = ("parquet", "jsonl")
ENGINES = ("duckdb", "spark")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="training data sets from predictions and feedback")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    e = actions.add_parser("export", help="export a data set (one row per predicted input row)")
    e.add_argument("--model", required=True, help="model name")
    e.add_argument("--version", help="model version")
    e.add_argument("--deployment", help="only this deployment's predictions")
    e.add_argument("--since", help="UTC date/time of the first prediction (rounded down to "
                   "its hour)")
    e.add_argument("--until", help="UTC date/time after the last prediction (rounded up to "
                   "an hour)")
    e.add_argument("--labelled-only", action="store_true",
                   help="only rows with a valid label")
    e.add_argument("--format", choices=FORMATS, default="parquet",
                   help="parquet (default) or jsonl")
    e.add_argument("--out", required=True, help="a directory, s3://BUCKET/PREFIX or "
                   "gs://BUCKET/PREFIX")
    e.add_argument("--out-endpoint-url", help="S3 or GCS endpoint of --out (MinIO, moto, an "
                   "emulator); default: storage.endpoint_url when --out is that kind of bucket")
    e.add_argument("--engine", choices=ENGINES, default="duckdb",
                   help="duckdb (default: this machine) or spark (pyspark; the spark extra)")
    e.add_argument("--task", choices=("regression", "classification"),
                   help="numbers or classes (default: spec.quality, else regression)")
    e.add_argument("--prediction", help="JSONPath into the answers (default: spec.quality, "
                   "else $.prediction)")
    e.add_argument("--label", help="JSONPath into the feedback (default: spec.quality, else "
                   "its only numeric field)")
    e.add_argument("--config", help="mlgate.yaml (see README: Configuration)")
    e.add_argument("--data-dir", help="data dir of the stack (local storage, state store)")
    e.set_defaults(func=cmd_dataset)


def _stored_spec(settings: Settings, model: str, deployment: str | None) -> Any:
    """``spec.quality`` from the data dir's state store, when there is one."""
    path = settings.data_path / "state.db"
    if not path.exists():
        return None
    import sqlite3

    from deploy.control.store import Store

    try:
        store = Store(path)
    except sqlite3.Error:
        return None
    try:
        for dep in store.list_deployments():
            if deployment is not None and dep.id != deployment:
                continue
            if dep.spec.quality is not None and (deployment or dep.status.model_name == model):
                return quality_spec(dep.spec.quality)
    finally:
        store.close()
    return None


def target_for(out: str, settings: Settings, endpoint_url: str | None = None) -> Any:
    from feedback.dataset import Target

    for scheme, kind in (("s3://", "s3"), ("gs://", "gcs")):
        if out.startswith(scheme):
            bucket, _, prefix = out[len(scheme):].partition("/")
            if not bucket:
                raise ValueError(f"--out {out!r} names no bucket")
            s = settings.storage
            endpoint = endpoint_url or (s.endpoint_url if s.kind == kind else None)
            return Target(backend=make_backend(kind, bucket=bucket, endpoint_url=endpoint,
                                               region=s.region, timeout=s.timeout),
                          prefix=prefix)
    return Target(directory=Path(out).resolve())


async def run_export(args: argparse.Namespace) -> int:
    from deploy.compose import build_backend
    from feedback.dataset import ExportQuery, export

    settings = load_settings(args.config, overrides={"data_dir": args.data_dir})
    spec = _stored_spec(settings, args.model, args.deployment)
    query = ExportQuery(
        args.model, args.version, args.deployment,
        parse_bound(args.since) if args.since else None,
        parse_bound(args.until) if args.until else None, args.labelled_only,
        task=args.task or (spec.task if spec and spec.task else "regression"),
        prediction=args.prediction or (spec.prediction if spec else None),
        label=args.label or (spec.label if spec else None))
    backend = build_backend(settings)
    target = target_for(args.out, settings, args.out_endpoint_url)
    try:
        result = await export(backend, settings.storage.prefix, query, target, args.format,
                              args.engine)
    finally:
        await backend.close()
        if target.backend is not None:
            await target.backend.close()
    for name in result.files:
        print(name)
    print(f"exported {result.rows} row(s) in {len(result.files)} file(s) to {args.out}",
          file=sys.stderr)
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    from feedback.dataset import DatasetError

    try:
        return asyncio.run(run_export(args))
    except (ConfigError, DatasetError, ValueError) as exc:
        print(f"mlgate: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"mlgate: cannot read or write records: {exc}", file=sys.stderr)
        return 1
