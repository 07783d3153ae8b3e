"""The ``mlgate`` command line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import uvloop

from deploy.cli import dataset, jobs, model, quality, records, resources, sidecar, tokens
from deploy.config import ConfigError, Settings, load_settings
from deploy.control.manifest import ManifestError, load_deployment_files


def add_up_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("up", help="run API, gateway and feedback with local replicas")
    p.add_argument("-f", "--file", dest="files", action="append", default=[],
                   metavar="MANIFEST", help="ModelDeployment manifest (repeatable)")
    p.add_argument("--config", help="mlgate.yaml (see README: Configuration)")
    p.add_argument("--host", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="listen port (default 5080; 0 picks a free one)")
    p.add_argument("--data-dir", help="state, keys, spool and local storage (default ./.mlgate)")
    p.add_argument("--workers", type=int, help="processes serving the port (default 1; one per "
                   "core): one runs the control plane, the others only the gateway")
    p.set_defaults(func=cmd_up)


def settings_from_args(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, overrides={
        "host": args.host, "port": args.port, "data_dir": args.data_dir,
        "workers": getattr(args, "workers", None)})


def cmd_up(args: argparse.Namespace) -> int:
    from deploy.compose import configure_logging_from
    from deploy.serve.up import run

    try:
        settings = settings_from_args(args)
        deployments = load_deployment_files(args.files)
    except (ConfigError, ManifestError) as exc:
        print(f"mlgate: {exc}", file=sys.stderr)
        return 2
    configure_logging_from(settings)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(settings, deployments, config_file=args.config))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlgate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_up_parser(sub)
    for group in (resources, jobs, model, records, tokens, sidecar, quality, dataset):
        group.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
