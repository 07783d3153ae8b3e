"""``make run``: ``mlgate up`` with the two demo wine models, then ready-to-paste curl commands."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import uvloop

from .cli import configure_logging, load_manifests
from .config import load_settings
from .up import run

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "wine"
REQUEST = ('{"columns": ["fixed acidity", "volatile acidity", "citric acid", "residual sugar", '
           '"chlorides", "free sulfur dioxide", "total sulfur dioxide", "density", "pH", '
           '"sulphates", "alcohol"], "data": [[7.0, 0.27, 0.36, 20.7, 0.045, 45.0, 170.0, '
           '1.001, 3.0, 0.45, 8.8]]}')


def curl_commands(url: str) -> str:
    return f"""
Call the model (the answer carries a request-id header):

  curl -i -X POST {url}/model/wine-v1/api/model/invoke \\
    -H 'Content-Type: application/json' \\
    -H 'Request-ID: demo-request-1' \\
    -d '{REQUEST}'

Send feedback for that prediction:

  curl -i -X POST {url}/feedback/model/ \\
    -H 'x-model-name: wine' -H 'x-model-version: 1.0' \\
    -H 'Request-ID: demo-request-1' \\
    -H 'Content-Type: application/json' -d '{{"truthful": 1}}'

The model's OpenAPI document: curl {url}/model/wine-v1/api/model/info
Deployments: .venv/bin/mlgate --help (e.g. mlgate deployment get -o table --url {url})
Management API (Swagger UI): {url}/swagger/index.html
Records land under the data dir's storage/ (request_response/, response_body/, feedback/).
Stop with Ctrl-C.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5080)
    parser.add_argument("--data-dir", default=".mlgate")
    args = parser.parse_args()
    settings = load_settings(overrides={"host": args.host, "port": args.port,
                                        "data_dir": args.data_dir})
    configure_logging(settings.log_level)
    deployments = load_manifests([str(EXAMPLES / "wine-v1.yaml"), str(EXAMPLES / "wine-v2.yaml")])

    def on_ready(url: str) -> None:
        print(curl_commands(url), flush=True)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(settings, deployments, on_ready))


if __name__ == "__main__":
    sys.exit(main())
