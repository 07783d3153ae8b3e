"""``mlgate deployment ...`` and ``mlgate route ...``: the management API from the shell.

Modelled on ``odahuflowctl``: ``get [--id] [-o FORMAT]``, ``create|edit -f FILE``,
``delete --id|-f``. ``--wait`` follows a deployment until it is Ready (exit 0),
Failed (exit 1, with the reason) or ``--timeout`` passes (exit 1).
``route set-weights ROUTE a=90 b=10`` is a canary step: only the weights change.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from deploy.cli.client import ApiError, Client, default_token, default_url
from deploy.cli.output import OutputError, check_format, deployment_row, render, route_row
from deploy.control.images import resolve_image
from deploy.control.manifest import ManifestError, load_documents

KINDS = {"deployment": "ModelDeployment", "route": "ModelRoute"}
ROWS = {"deployment": deployment_row, "route": route_row}
POLL_INTERVAL = 0.5


def connection_options() -> argparse.ArgumentParser:
    """``--url`` and ``--token``, shared by every command that talks to mlgate."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--url", default=None,
                   help=f"mlgate URL (default: $MLGATE_URL or {default_url()})")
    p.add_argument("--token", default=None, help="bearer token (default: $MLGATE_TOKEN)")
    return p


def client_from(args: argparse.Namespace) -> Client:
    return Client(args.url or default_url(),
                  args.token if args.token is not None else default_token())


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


def _weight(value: str) -> tuple[str, int]:
    name, sep, weight = value.partition("=")
    if not sep or not name or not weight.strip().isdigit():
        raise argparse.ArgumentTypeError(
            f"{value!r} is not DEPLOYMENT=WEIGHT (a whole number 0-100), e.g. wine-v2=10")
    return name.strip(), int(weight)


def with_weights(route: dict[str, Any], weights: list[tuple[str, int]]) -> dict[str, Any]:
    """The route's writable part (id, spec) with new weights; targets keep their order,
    new names are appended. The API validates the sum."""
    spec = dict(route.get("spec", {}))
    given = dict(weights)
    if len(given) != len(weights):
        raise ManifestError("a deployment is named twice")
    targets = [dict(t, weight=given.pop(t["mdName"], t.get("weight", 100)))
               for t in spec.get("modelDeployments", [])]
    targets += [{"mdName": name, "weight": weight} for name, weight in given.items()]
    spec["modelDeployments"] = targets
    return {"kind": "ModelRoute", "id": route["id"], "spec": spec}


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


def run(args: argparse.Namespace, body) -> int:
    """Run ``body(client)`` and turn the expected errors into one line on stderr."""
    try:
        with client_from(args) as client:
            return body(client)
    except (ApiError, ManifestError, OutputError) as exc:
        print(f"mlgate: {exc}", file=sys.stderr)
        return 1


def cmd_get(args: argparse.Namespace) -> int:
    def body(client: Client) -> int:
        objects = [client.get(args.kind, args.id)] if args.id else client.list(args.kind)
        print(render(objects, args.output, ROWS[args.kind]))
        return 0

    return run(args, body)


def cmd_write(args: argparse.Namespace) -> int:
    def body(client: Client) -> int:
        code = 0
        for doc in manifests(args.file, args.kind, args.id):
            write = client.create if args.action == "create" else client.update
            obj = write(args.kind, doc)
            done = "created" if args.action == "create" else "updated"
            print(f"Model {args.kind} {obj['id']} {done}")
            if args.kind == "deployment" and args.wait:
                code = max(code, wait_ready(client, obj["id"], args.timeout))
        return code

    return run(args, body)


def cmd_set_weights(args: argparse.Namespace) -> int:
    def body(client: Client) -> int:
        route = client.update("route", with_weights(client.get("route", args.route),
                                                    args.weights))
        split = " ".join(f"{t['mdName']}={t.get('weight', 100)}"
                         for t in route["spec"]["modelDeployments"])
        print(f"Model route {route['id']} updated: {split}")
        return 0

    return run(args, body)


def cmd_delete(args: argparse.Namespace) -> int:
    def body(client: Client) -> int:
        ids = [args.id] if args.id else [d.get("id", "") for d in manifests(args.file, args.kind)]
        for obj_id in ids:
            try:
                print(client.delete(args.kind, obj_id))
            except ApiError as exc:
                if exc.status == 404 and args.ignore_not_found:
                    print(f"Model {args.kind} {obj_id} not found; nothing to delete")
                    continue
                raise
            if args.kind == "deployment" and args.wait:
                wait_gone(client, obj_id, args.timeout)
        return 0

    return run(args, body)


def describe(dep: dict[str, Any]) -> str:
    status = dep.get("status", {})
    text = (f"{dep['id']}: {status.get('state')} ({status.get('availableReplicas', 0)}/"
            f"{status.get('replicas', 0)} replicas available)")
    if status.get("modelName"):
        text += f", model {status['modelName']} {status.get('modelVersion', '')}"
    if status.get("reason"):
        text += f": {status['reason']}"
    return text


def wait_ready(client: Client, dep_id: str, timeout: float) -> int:
    """Print each change of the deployment's status until Ready (0) or Failed/timeout (1)."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        dep = client.get("deployment", dep_id)
        line = describe(dep)
        if line != last:
            print(line, flush=True)
            last = line
        state = dep.get("status", {}).get("state")
        if state == "Ready":
            return 0
        if state == "Failed":
            reason = dep["status"].get("reason") or "no reason given"
            print(f"mlgate: model deployment {dep_id} failed: {reason}", file=sys.stderr)
            return 1
        if time.monotonic() > deadline:
            print(f"mlgate: model deployment {dep_id} is not Ready after {timeout:g}s "
                  f"(state {state})", file=sys.stderr)
            return 1
        time.sleep(POLL_INTERVAL)


def wait_gone(client: Client, dep_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.get("deployment", dep_id)
        except ApiError as exc:
            if exc.status == 404:
                print(f"Model deployment {dep_id} is gone")
                return
            raise
        time.sleep(POLL_INTERVAL)
    raise ApiError(f"model deployment {dep_id} still exists after {timeout:g}s")
