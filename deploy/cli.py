"""The ``mlgate`` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

import uvloop

from . import cli_model, cli_records, cli_resources, cli_sidecar, cli_token
from .config import ConfigError, Settings, load_settings
from .manifest import ManifestError, load_deployments
from .models import ModelDeployment


def configure_logging(level: str, fmt: str = "text") -> None:
    """Log lines on stderr; ``fmt`` ``json`` (``logging.format``) writes one object a line."""
    from gateway.access_log import TEXT_FORMAT

    logging.basicConfig(level=level.upper(), stream=sys.stderr, format=TEXT_FORMAT)
    if fmt == "json":
        from gateway.access_log import JsonFormatter

        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())


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


def load_manifests(files: Sequence[str]) -> list[ModelDeployment]:
    deployments: list[ModelDeployment] = []
    seen: set[str] = set()
    for path in files:
        for dep in load_deployments(path):
            if dep.id in seen:
                raise ManifestError(f"{path}: deployment {dep.id!r} is defined twice")
            seen.add(dep.id)
            deployments.append(dep)
    return deployments


def cmd_up(args: argparse.Namespace) -> int:
    from .up import run

    try:
        settings = settings_from_args(args)
        deployments = load_manifests(args.files)
    except (ConfigError, ManifestError) as exc:
        print(f"mlgate: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.logging.format)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(settings, deployments, config_file=args.config))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlgate", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_up_parser(sub)
    cli_resources.add_parser(sub)
    cli_model.add_parser(sub)
    cli_records.add_parser(sub)
    cli_token.add_parser(sub)
    cli_sidecar.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
