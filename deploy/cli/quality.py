"""``mlgate quality ID [--route] [--since ...] [--until ...] [--window ...] [-o table|json]``:
a deployment's live model quality (or, with ``--route``, each target's), from the API.

The table shows how quality is measured, the totals over the span, then one line per bucket
of the series; ``-o json`` prints the API's document as it is.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from deploy.cli.client import API, Client
from deploy.cli.output import table
from deploy.cli.resources import connection_options, run

REGRESSION_COLUMNS = ("count", "mae", "rmse", "bias")
CLASSIFICATION_COLUMNS = ("count", "accuracy")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quality", parents=[connection_options()],
                       help="live model quality of a deployment or of a route's targets")
    p.add_argument("id", help="the deployment id (or route id, with --route)")
    p.add_argument("--route", action="store_true", help="ID is a model route: one section "
                   "per target deployment")
    p.add_argument("--since", help="UTC date/time (2026-11-25T10:00) or a duration back from "
                   "now (6h); default: 24 windows back")
    p.add_argument("--until", help="UTC date/time or a duration back from now; default: now")
    p.add_argument("--window", help="bucket width, whole minutes (1m, 15m, 1h); default: the "
                   "deployment's spec.quality.window")
    p.add_argument("-o", "--output-format", dest="output", choices=("table", "json"),
                   default="table", help="table (default) or json")
    p.set_defaults(func=cmd_quality)


def fetch_quality(client: Client, obj_id: str, route: bool,
                  params: dict[str, str]) -> dict[str, Any]:
    kind = "route" if route else "deployment"
    return client.request("GET", f"{API}/model/{kind}/{obj_id}/quality", params=params).json()


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_deployment(doc: dict[str, Any]) -> str:
    quality = doc["quality"]
    head = [f"deployment {doc['deployment_id']} (model {doc['model_name'] or '?'} "
            f"{doc['model_version'] or '?'}): quality {quality['state']}"]
    if quality["state"] == "not configured":
        head.append(f"  {quality.get('reason', '')}")
    else:
        defaults = ", ".join(quality.get("defaults") or []) or "none"
        head.append(f"  task {quality['task']}, prediction {quality['prediction']}, label "
                    f"{quality['label']}, window {quality['window']} (inferred: {defaults})")
        if quality.get("reason"):
            head.append(f"  {quality['reason']}")
    if not doc.get("complete", True):
        head.append("  (still reading the bucket: figures are partial)")
    columns = (REGRESSION_COLUMNS if quality.get("task") == "regression" else
               CLASSIFICATION_COLUMNS) if quality["state"] != "not configured" else ()
    rows = []
    for name, bucket in [("TOTAL", doc["totals"]), *((b["start"], b) for b in doc["series"])]:
        if name != "TOTAL" and not bucket["requests"] and not bucket["labelled"]:
            continue
        row = {"FROM": name if name == "TOTAL" else name.replace("T", " ").rstrip("Z"),
               "REQUESTS": _fmt(bucket["requests"]), "5XX": _fmt(bucket["errors"]),
               "LABELLED": _fmt(bucket["labelled"]), "UNLABELLED": _fmt(bucket["unlabelled"]),
               "INVALID": _fmt(sum(bucket["invalid"].values()))}
        for column in columns:
            row[column.upper()] = _fmt(bucket.get(column))
        row["MEDIAN DELAY"] = _fmt(bucket.get("median_label_delay_seconds"))
        rows.append(row)
    span = f"from {doc['since']} to {doc['until']}, by {doc['window']}"
    return "\n".join([*head, f"  {span}", "", table(rows)])


def render(doc: dict[str, Any], route: bool) -> str:
    if not route:
        return render_deployment(doc)
    parts = [f"route {doc['route_id']}: {len(doc['targets'])} target(s)"]
    for target in doc["targets"]:
        parts += ["", render_deployment(target)]
    if doc.get("mirror"):
        parts += ["", "mirror (shadow copies):", render_deployment(doc["mirror"])]
    return "\n".join(parts)


def cmd_quality(args: argparse.Namespace) -> int:
    params = {k: v for k in ("since", "until", "window") if (v := getattr(args, k))}

    def body(client: Client) -> int:
        doc = fetch_quality(client, args.id, args.route, params)
        print(json.dumps(doc, indent=2) if args.output == "json" else render(doc, args.route))
        return 0

    return run(args, body)
