"""``make run``: ``mlgate up`` with the two demo wine models, then ready-to-paste curl commands."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import uvloop

from deploy.compose import configure_logging_from
from deploy.config import load_settings
from deploy.control.manifest import load_deployment_files
from deploy.keys import mint_token, parse_duration
from deploy.serve.up import run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "wine"
REQUEST = ('{"columns": ["fixed acidity", "volatile acidity", "citric acid", "residual sugar", '
           '"chlorides", "free sulfur dioxide", "total sulfur dioxide", "density", "pH", '
           '"sulphates", "alcohol"], "data": [[7.0, 0.27, 0.36, 20.7, 0.045, 45.0, 170.0, '
           '1.001, 3.0, 0.45, 8.8]]}')


TOKEN_TTL = "12h"


def curl_commands(url: str, token: str | None, data_dir: str) -> str:
    if token is None:
        auth_intro, auth = "Authentication is OFF (auth.enabled: false).\n", ""
    else:
        auth_intro = (f"Every call needs a bearer token. An admin token, valid {TOKEN_TTL}:\n\n"
                      f"  export TOKEN={token}\n\n"
                      f"(another one: .venv/bin/mlgate token --data-dir {data_dir} "
                      "--role data_scientist --ttl 1h)\n")
        auth = "-H \"Authorization: Bearer $TOKEN\" "
    return f"""
{auth_intro}
Call the model (the answer carries a request-id header):

  curl -i -X POST {url}/model/wine-v1/api/model/invoke \\
    {auth}-H 'Content-Type: application/json' \\
    -H 'Request-ID: demo-request-1' \\
    -d '{REQUEST}'

Send feedback for that prediction:

  curl -i -X POST {url}/feedback/model/ {auth}\\
    -H 'x-model-name: wine' -H 'x-model-version: 1.0' \\
    -H 'Request-ID: demo-request-1' \\
    -H 'Content-Type: application/json' -d '{{"truthful": 1}}'

The model's live quality (MAE) once feedback came:
  .venv/bin/mlgate quality wine-v1 --url {url} --token "$TOKEN"
A training data set (Parquet, one row per prediction, with its label):
  .venv/bin/mlgate dataset export --model wine --data-dir {data_dir} --out datasets/wine
The model's OpenAPI document: curl {auth}{url}/model/wine-v1/api/model/info
The gateway's own: curl {auth}{url}/openapi.json
Deployments: .venv/bin/mlgate deployment get -o table --url {url} --token "$TOKEN"
Score all of examples/wine/wine-quality.csv as a batch job (predictions next to it):
  .venv/bin/mlgate job run -f examples/wine/job.yaml --wait --url {url} --token "$TOKEN"
A canary rollout of wine-v2 over wine-v1 that promotes or rolls back by itself, judged on
traffic with its ground truth:
  .venv/bin/mlgate route create -f examples/wine/wine-rollout.yaml --url {url} --token "$TOKEN"
  .venv/bin/python examples/wine/traffic.py --route wine --rows 4000 --url {url} --token "$TOKEN" &
  .venv/bin/mlgate route status wine --watch --url {url} --token "$TOKEN"

In a browser (paste the token into the form at the top of each page):
  Service catalog, call the models from the page: {url}/service-catalog/
  Status, every deployment at a glance:           {url}/status/
  Management API (Swagger UI):                    {url}/swagger/index.html
Prometheus metrics (no token): {url}/metrics; Grafana dashboard: ops/grafana/
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
    configure_logging_from(settings)
    deployments = load_deployment_files([EXAMPLES / "wine-v1.yaml", EXAMPLES / "wine-v2.yaml"])

    def on_ready(url: str) -> None:
        token = None
        if settings.auth.enabled:
            token = mint_token(settings.auth, settings.data_path, roles=["admin"],
                               subject="demo", ttl=parse_duration(TOKEN_TTL))
        print(curl_commands(url, token, args.data_dir), flush=True)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(run(settings, deployments, on_ready))


if __name__ == "__main__":
    sys.exit(main())
