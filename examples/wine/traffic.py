"""Production-like traffic for the demo: rows of the wine data through a route (or a
deployment) with the Python SDK, each prediction's true quality sent back as feedback.

    .venv/bin/python examples/wine/traffic.py --route wine --rows 3000

``--url``/``--token`` (default ``$MLGATE_URL``, ``$MLGATE_TOKEN``) say where mlgate is.
Rows are drawn at random (``--seed``), about ``--rate`` a second; a summary line per
version that answered is printed at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd

import mlgate

DATA = Path(__file__).resolve().parent / "wine-quality.csv"
LABEL = "quality"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--route", help="a route id: its targets share the rows")
    target.add_argument("--deployment", help="a deployment id")
    parser.add_argument("--rows", type=int, default=3000, help="rows to send (default 3000)")
    parser.add_argument("--rate", type=float, default=20.0, help="rows a second (default 20)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--url", default=None)
    parser.add_argument("--token", default=None)
    args = parser.parse_args(argv)
    rows = pd.read_csv(DATA).sample(n=args.rows, replace=True, random_state=args.seed)
    served: Counter[str] = Counter()
    with mlgate.Client(args.url, args.token, progress=False) as mg:
        for start in range(len(rows)):
            began = time.monotonic()
            row = rows.iloc[[start]]
            try:
                pred = mg.invoke(args.route or args.deployment, row.drop(columns=[LABEL]),
                                 route=args.route is not None)
            except mlgate.ApiError as exc:  # a canary that fails: no prediction to label
                if exc.status < 500:
                    raise
                served[f"answered {exc.status}"] += 1
                continue
            mg.feedback(pred, row[LABEL])
            served[f"{pred.attrs['deployment']} ({pred.attrs['model_name']} "
                   f"{pred.attrs['model_version']})"] += 1
            time.sleep(max(0.0, 1 / args.rate - (time.monotonic() - began)))
    for name, count in sorted(served.items()):
        print(f"{count} predictions and their labels: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
