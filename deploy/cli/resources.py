"""``mlgate deployment ...`` and ``mlgate route ...``: the management API from the shell.

Modelled on ``odahuflowctl``: ``get [--id] [-o FORMAT]``, ``create|edit -f FILE``,
``delete --id|-f``. ``--wait`` follows a deployment until it is Ready (exit 0),
Failed (exit 1, with the reason) or ``--timeout`` passes (exit 1).
``route set-weights ROUTE a=90 b=10`` is a canary step: only the weights change.
``route promote|abort|pause|resume|status ID`` control a canary rollout
(:mod:`deploy.cli.rollout`). Every call goes through the Python SDK (:mod:`mlgate`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlgate
from deploy.cli import rollout
from deploy.cli.output import OutputError, check_format, deployment_row, render, route_row
from deploy.control.images import resolve_image
from deploy.control.manifest import ManifestError, load_documents
from mlgate.client import default_url
from mlgate.progress import SinkFactory, default_progress

KINDS = {"deployment": "ModelDeployment", "route": "ModelRoute"}
ROWS = {"deployment": deployment_row, "route": route_row}


def connection_options() -> argparse.ArgumentParser:
    """``--url`` and ``--token``, shared by every command that talks to mlgate."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--url", default=None,
                   help=f"mlgate URL (default: $MLGATE_URL or {default_url()})")
    p.add_argument("--token", default=None, help="bearer token (default: $MLGATE_TOKEN)")
    return p


def client_from(args: argparse.Namespace,
                progress: SinkFactory | None = None) -> mlgate.Client:
    """The SDK client for ``--url``/``--token``; waits show on stdout (a bar for a job's rows
    on a terminal, else one line per change), or on ``progress``."""
    return mlgate.Client(args.url, args.token,
                         progress=progress or default_progress(sys.stdout))


def add_parser(sub: argparse._SubParsersAction) -> None:
    conn = connection_options()
    for kind in KINDS:
        group = sub.add_parser(kind, help=f"manage model {kind}s through the API")
        cmds = group.add_subparsers(dest="action", required=True, metavar="ACTION")
        get = cmds.add_parser("get", parents=[conn], help=f"show one or all {kind}s")
        get.add_argument("--id", help=f"the {kind} id (default: all)")
        get.add_argument("-o", "--output-format", dest="output", default="yaml",
                         type=_format, help="json | yaml | table | jsonpath=EXPR (default yaml)")
        get.set_defaults(func=cmd_get, kind=kind)
        for action, verb in (("create", "create"), ("edit", "update")):
            p = cmds.add_parser(action, parents=[conn], help=f"{verb} {kind}s from a file")
            p.add_argument("-f", "--file", required=True, help="YAML or JSON manifest")
            p.add_argument("--id", help="override the id in the file")
            if kind == "deployment":
                _wait_options(p)
            p.set_defaults(func=cmd_write, kind=kind, action=action)
        delete = cmds.add_parser("delete", parents=[conn], help=f"delete a {kind}")
        which = delete.add_mutually_exclusive_group(required=True)
        which.add_argument("--id", help=f"the {kind} id")
        which.add_argument("-f", "--file", help="a manifest naming it")
        delete.add_argument("--ignore-not-found", action="store_true",
                            help="exit 0 if it does not exist")
        if kind == "deployment":
            _wait_options(delete, "until it is gone")
        delete.set_defaults(func=cmd_delete, kind=kind)
        if kind == "route":
            weights = cmds.add_parser(
                "set-weights", parents=[conn], help="change a route's split (canary steps)",
                description="Set the weights of the named targets (they must sum to 100 with "
                            "the others). Targets keep their order, so sticky users move only "
                            "as much as the weights do; a new name is added as a target.")
            weights.add_argument("route", help="the route id")
            weights.add_argument("weights", nargs="+", type=_weight, metavar="DEPLOYMENT=WEIGHT",
                                 help="e.g. wine-v1=90 wine-v2=10")
            weights.set_defaults(func=cmd_set_weights, kind=kind)
            rollout.add_commands(cmds, conn, run)


def _weight(value: str) -> tuple[str, int]:
    name, sep, weight = value.partition("=")
    if not sep or not name or not weight.strip().isdigit():
        raise argparse.ArgumentTypeError(
            f"{value!r} is not DEPLOYMENT=WEIGHT (a whole number 0-100), e.g. wine-v2=10")
    return name.strip(), int(weight)


def _format(value: str) -> str:
    try:
        return check_format(value)
    except OutputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _wait_options(p: argparse.ArgumentParser, until: str = "until it is Ready") -> None:
    p.add_argument("--wait", action="store_true", help=f"follow the deployment {until}")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds to wait with --wait (default 600)")


def manifests(path: str, kind: str, override_id: str | None = None) -> list[dict[str, Any]]:
    """The file's documents of ``kind``; relative ``file://`` images resolved from the file."""
    docs = [d for d in load_documents(path) if d.get("kind", KINDS[kind]) == KINDS[kind]]
    if not docs:
        raise ManifestError(f"{path} has no {KINDS[kind]} document")
    if override_id:
        if len(docs) > 1:
            raise ManifestError(f"--id needs a file with one {KINDS[kind]}, {path} has {len(docs)}")
        docs[0]["id"] = override_id
    base = Path(path).resolve().parent
    for doc in docs:
        spec = doc.get("spec")
        if kind == "deployment" and isinstance(spec, dict) and isinstance(spec.get("image"), str):
            spec["image"] = resolve_image(spec["image"], base)
    return docs


def run(args: argparse.Namespace, body: Callable[[mlgate.Client], int],
        progress: SinkFactory | None = None) -> int:
    """Run ``body(client)`` and turn the expected errors into one line on stderr (exit 1);
    ``progress``: how the client shows waits (default: :func:`client_from`'s)."""
    try:
        with client_from(args, progress) as client:
            return body(client)
    except (mlgate.MlgateError, ManifestError, OutputError, ValueError) as exc:
        print(f"mlgate: {exc}", file=sys.stderr)
        return 1


def _api(client: mlgate.Client, kind: str) -> mlgate.Deployments | mlgate.Routes:
    return client.deployments if kind == "deployment" else client.routes


def cmd_get(args: argparse.Namespace) -> int:
    def body(client: mlgate.Client) -> int:
        api = _api(client, args.kind)
        objects = [api.get(args.id)] if args.id else api.list()
        print(render([o.raw for o in objects], args.output, ROWS[args.kind]))
        return 0

    return run(args, body)


def cmd_write(args: argparse.Namespace) -> int:
    def body(client: mlgate.Client) -> int:
        for doc in manifests(args.file, args.kind, args.id):
            api = _api(client, args.kind)
            write = api.create if args.action == "create" else api.update
            obj = write(doc)
            done = "created" if args.action == "create" else "updated"
            print(f"Model {args.kind} {obj.id} {done}", flush=True)
            if args.kind == "deployment" and args.wait:
                client.deployments.wait(obj.id, timeout=args.timeout)
        return 0

    return run(args, body)


def cmd_set_weights(args: argparse.Namespace) -> int:
    def body(client: mlgate.Client) -> int:
        given = dict(args.weights)
        if len(given) != len(args.weights):
            raise ManifestError("a deployment is named twice")
        route = client.routes.set_weights(args.route, given)
        split = " ".join(f"{name}={weight}" for name, weight in route.targets.items())
        print(f"Model route {route.id} updated: {split}")
        return 0

    return run(args, body)


def cmd_delete(args: argparse.Namespace) -> int:
    def body(client: mlgate.Client) -> int:
        ids = [args.id] if args.id else [d.get("id", "") for d in manifests(args.file, args.kind)]
        for obj_id in ids:
            try:
                if args.kind == "deployment":
                    message = client.deployments.delete(obj_id)
                else:
                    message = client.routes.delete(obj_id)
            except mlgate.NotFound:
                if not args.ignore_not_found:
                    raise
                print(f"Model {args.kind} {obj_id} not found; nothing to delete")
                continue
            print(message, flush=True)
            if args.kind == "deployment" and args.wait:
                client.deployments.wait_gone(obj_id, timeout=args.timeout)
        return 0

    return run(args, body)
