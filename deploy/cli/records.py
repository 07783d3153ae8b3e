"""``mlgate records ls|cat``: list or print stored records from the configured bucket.

Reads the same configuration as ``mlgate up`` (``--config``, ``MLGATE_*``,
``--data-dir``), so it looks where the running stack writes. Records still
waiting in the spool are not in the bucket yet and are not shown.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

from deploy.config import ConfigError, load_settings
from storage import KINDS, RecordQuery, StorageError, iter_records, list_objects, parse_bound


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("records", help="list or print stored records (request logs, feedback)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_ in (("ls", "list the objects holding matching records"),
                        ("cat", "print matching records as JSON Lines")):
        a = actions.add_parser(name, help=help_)
        a.add_argument("--kind", choices=KINDS, action="append",
                       help="record kind (repeatable; default: all)")
        a.add_argument("--model", help="model name")
        a.add_argument("--version", help="model version (needs --model)")
        a.add_argument("--since", help="from this UTC date/time on (2026-11-01, 2026-11-01T09)")
        a.add_argument("--until", help="before this UTC date/time")
        a.add_argument("--config", help="mlgate.yaml (see README: Configuration)")
        a.add_argument("--data-dir", help="data dir of the stack (local storage)")
        a.set_defaults(func=cmd_records)


def build_queries(args: argparse.Namespace) -> list[RecordQuery]:
    since = parse_bound(args.since) if args.since else None
    until = parse_bound(args.until) if args.until else None
    return [RecordQuery(kind, args.model, args.version, since, until)
            for kind in (args.kind or KINDS)]


async def run_records(args: argparse.Namespace) -> int:
    from deploy.compose import build_backend

    settings = load_settings(args.config, overrides={"data_dir": args.data_dir})
    queries = build_queries(args)
    backend = build_backend(settings)
    prefix = settings.storage.prefix
    out = sys.stdout.buffer
    try:
        for query in queries:
            if args.action == "ls":
                for key in await list_objects(backend, prefix, query):
                    out.write(key.encode() + b"\n")
            else:
                async for record in iter_records(backend, prefix, query):
                    out.write(orjson.dumps(record) + b"\n")
        out.flush()
    finally:
        await backend.close()
    return 0


def cmd_records(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(run_records(args))
    except (ConfigError, ValueError) as exc:
        print(f"mlgate: {exc}", file=sys.stderr)
        return 2
    except StorageError as exc:
        print(f"mlgate: cannot read records: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0
