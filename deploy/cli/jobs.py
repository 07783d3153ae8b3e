"""``mlgate job run|get|delete|resume``: inference jobs through the API.

``run -f job.yaml`` creates the job (relative local paths and a relative ``modelUri``
resolve from the manifest's directory); ``--wait`` follows it to its end with a progress
bar (plain lines when stdout is not a terminal) and exits 0 when it ``Succeeded`` or
``SucceededWithErrors`` (the errors are listed under ``_errors/`` in the output and
named on stderr), 1 when it ``Failed`` or ``--timeout`` passed.
``resume ID [--retry-errors]`` runs a job that ended again: it skips every object whose
output exists; ``--retry-errors`` re-runs only the rows listed in ``_errors/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import mlgate
from deploy.batch.locations import resolve_job_paths
from deploy.cli.output import OutputError, check_format, render
from deploy.cli.resources import connection_options, run
from deploy.control.jobs import STATE_FAILED
from deploy.control.manifest import ManifestError, load_documents
from mlgate.objects import job_row

KIND = "InferenceJob"


def add_parser(sub: argparse._SubParsersAction) -> None:
    conn = connection_options()
    group = sub.add_parser("job", help="run and follow inference jobs (a model over a bucket "
                                       "prefix)")
    cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = cmds.add_parser("run", parents=[conn], help="create an inference job from a file")
    p.add_argument("-f", "--file", required=True, help="YAML or JSON InferenceJob manifest")
    p.add_argument("--id", help="override the id in the file")
    _wait_options(p)
    p.set_defaults(func=cmd_run)
    p = cmds.add_parser("get", parents=[conn], help="show one or all inference jobs")
    p.add_argument("id", nargs="?", help="the job id (default: all)")
    p.add_argument("-o", "--output-format", dest="output", default="yaml", type=_format,
                   help="json | yaml | table | jsonpath=EXPR (default yaml)")
    p.set_defaults(func=cmd_get)
    p = cmds.add_parser("delete", parents=[conn],
                        help="delete an inference job (stops it; its outputs stay)")
    p.add_argument("id", help="the job id")
    p.add_argument("--ignore-not-found", action="store_true", help="exit 0 if it does not exist")
    p.set_defaults(func=cmd_delete)
    p = cmds.add_parser("resume", parents=[conn],
                        help="run an ended job again, skipping what is done")
    p.add_argument("id", help="the job id")
    p.add_argument("--retry-errors", action="store_true",
                   help="re-run only the rows listed in _errors/")
    _wait_options(p)
    p.set_defaults(func=cmd_resume)


def _format(value: str) -> str:
    try:
        return check_format(value)
    except OutputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _wait_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true",
                   help="follow the job to its end with a progress bar")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds to wait with --wait (default: no limit)")


def manifest(path: str, override_id: str | None = None) -> dict[str, Any]:
    """The file's one InferenceJob, local paths resolved from the file's directory."""
    docs = [d for d in load_documents(path) if d.get("kind", KIND) == KIND]
    if len(docs) != 1:
        raise ManifestError(f"{path} must hold exactly one {KIND} document, found {len(docs)}")
    doc = docs[0]
    if override_id:
        doc["id"] = override_id
    return resolve_job_paths(doc, Path(path).resolve().parent)


def cmd_run(args: argparse.Namespace) -> int:
    def body(client: mlgate.Client) -> int:
        job = client.jobs.create(manifest(args.file, args.id))
        print(f"Inference job {job.id} created", flush=True)
        return follow(client, job.id, args.timeout) if args.wait else 0

    return run(args, body)


def cmd_get(args: argparse.Namespace) -> int:
    def body(client: mlgate.Client) -> int:
        jobs = [client.jobs.get(args.id)] if args.id else client.jobs.list()
        print(render([j.raw for j in jobs], args.output, job_row))
        return 0

    return run(args, body)


def cmd_delete(args: argparse.Namespace) -> int:
    def body(client: mlgate.Client) -> int:
        try:
            print(client.jobs.delete(args.id))
        except mlgate.NotFound:
            if not args.ignore_not_found:
                raise
            print(f"Inference job {args.id} not found; nothing to delete")
        return 0

    return run(args, body)


def cmd_resume(args: argparse.Namespace) -> int:
    def body(client: mlgate.Client) -> int:
        job = client.jobs.resume(args.id, retry_errors=args.retry_errors)
        what = "the rows in _errors/ of " if args.retry_errors else ""
        print(f"Inference job {job.id}: running {what}it again", flush=True)
        return follow(client, job.id, args.timeout) if args.wait else 0

    return run(args, body)


def follow(client: mlgate.Client, job_id: str, timeout: float | None) -> int:
    """Show the job's progress until it ends (the SDK's bar, or lines off a terminal); the
    exit status for its end."""
    job = client.jobs.wait(job_id, timeout=timeout)
    print(job.summary())
    if job.reason:
        print(f"mlgate: {job.reason}", file=sys.stderr)
    return 1 if job.state == STATE_FAILED else 0
