"""``mlgate sidecar``: the gateway in front of one predictor, inside the model's pod."""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvloop

from deploy.config import ConfigError, load_settings
from deploy.control.deployments import PREDICTORS
from deploy.control.resource import validate_id


def parse_upstream(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--upstream must be HOST:PORT, got {text!r}")
    return host, int(port)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sidecar", help="the gateway in a model's pod, in front of its predictor")
    p.add_argument("--upstream", type=parse_upstream, default=("127.0.0.1", 5000),
                   metavar="HOST:PORT", help="the predictor (default 127.0.0.1:5000)")
    p.add_argument("--deployment-id", required=True, help="the ModelDeployment id")
    p.add_argument("--predictor", choices=PREDICTORS, default="odahu-ml-server")
    p.add_argument("--config", help="mlgate.yaml (storage, gateway timeouts)")
    p.add_argument("--host", default="0.0.0.0", help="listen address (default 0.0.0.0)")
    p.add_argument("--port", type=int, default=8080, help="listen port (default 8080)")
    p.add_argument("--data-dir", help="the spool of logged records")
    p.add_argument("--no-records", dest="records", action="store_false",
                   help="do not log requests (the edge in front already does)")
    p.set_defaults(func=cmd_sidecar)


def cmd_sidecar(args: argparse.Namespace) -> int:
    from deploy.compose import configure_logging_from
    from deploy.serve.sidecar import run_sidecar

    problems = validate_id(args.deployment_id)
    if problems:
        print(f"mlgate: --deployment-id: {problems[0]}", file=sys.stderr)
        return 2
    try:
        settings = load_settings(args.config, overrides={
            "host": args.host, "port": args.port, "data_dir": args.data_dir})
    except ConfigError as exc:
        print(f"mlgate: {exc}", file=sys.stderr)
        return 2
    configure_logging_from(settings)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run_sidecar(settings, args.upstream, args.deployment_id,
                                      args.predictor, args.records))
