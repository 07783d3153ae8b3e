"""``python -m predictor``: serve one MLflow model over the odahu-ml-server protocol.

Exit codes: 0 after SIGTERM/SIGINT (in-flight requests finished), 2 bad arguments,
3 the model cannot be loaded (one line on stderr says why), 4 cannot listen.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from typing import NoReturn

EXIT_LOAD_FAILED = 3
EXIT_LISTEN_FAILED = 4


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m predictor",
        description="Serve an MLflow model: /healthcheck, /api/model/info, "
        "/api/model/invoke and /invocations.",
    )
    parser.add_argument(
        "--model-uri",
        required=True,
        help="model directory: a path, file:///abs/dir or file://./rel/dir",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--port", type=int, default=5000, help="port to bind (default 5000)")
    where.add_argument(
        "--fd",
        type=int,
        default=None,
        help="serve on this inherited, already bound TCP socket instead of binding",
    )
    parser.add_argument("--model-name", default=None, help="default: MLmodel metadata model_name")
    parser.add_argument(
        "--model-version", default=None, help="default: MLmodel metadata model_version"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="debug also logs every request",
    )
    return parser.parse_args(argv)


def _exit_now(signum: int, frame: object) -> NoReturn:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Asked to stop while still loading: stop, cleanly. Serving replaces these handlers.
    signal.signal(signal.SIGTERM, _exit_now)
    signal.signal(signal.SIGINT, _exit_now)

    sock = None
    if args.fd is not None:
        try:
            sock = socket.socket(fileno=args.fd)
        except OSError as err:
            print(f"predictor: --fd {args.fd} is not a socket: {err}", file=sys.stderr)
            return EXIT_LISTEN_FAILED

    from predictor.model import ModelLoadError, load_model

    try:
        model = load_model(args.model_uri, name=args.model_name, version=args.model_version)
    except ModelLoadError as err:
        print(f"predictor: cannot load model from {args.model_uri}: {err}", file=sys.stderr)
        return EXIT_LOAD_FAILED

    import uvloop

    from predictor.server import serve

    try:
        uvloop.run(
            serve(
                model,
                host=args.host,
                port=args.port,
                sock=sock,
                access_log=args.log_level == "debug",
            )
        )
    except OSError as err:
        print(f"predictor: cannot listen: {err}", file=sys.stderr)
        return EXIT_LISTEN_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
