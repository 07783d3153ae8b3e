"""``mlgate quality ID [--route] [--since ...] [--until ...] [--window ...] [-o table|json]``:
a deployment's live model quality (or, with ``--route``, each target's), through the SDK.

The table shows how quality is measured, the totals over the span, then one line per bucket
of the series; ``-o json`` prints the API's document as it is.
"""

from __future__ import annotations

import argparse
import json

import mlgate
from deploy.cli.resources import connection_options, run


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


def cmd_quality(args: argparse.Namespace) -> int:
    params = {k: v for k in ("since", "until", "window") if (v := getattr(args, k))}

    def body(client: mlgate.Client) -> int:
        found = client.quality(args.id, route=args.route, **params)
        print(json.dumps(found.raw, indent=2) if args.output == "json" else str(found))
        return 0

    return run(args, body)
