"""``mlgate model info|invoke`` and ``mlgate feedback send``: call deployed models from the shell.

Like ``odahuflowctl model``, a model is found by deployment (``--md``: its default
route) or by route (``--mr``), through the API's ``status.edgeUrl``. ``invoke`` sends
what the deployment's predictor speaks (:mod:`deploy.cli.v2_client`): the file as it is
to ``/api/model/invoke`` for ``odahu-ml-server``, a KServe v2 infer request for
``triton`` (an ODAHU ``{"columns", "data"}`` file becomes one tensor).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from deploy.cli.client import ApiError, Client
from deploy.cli.resources import connection_options, run
from deploy.cli.v2_client import (
    TRITON_PREDICTOR,
    InvokeRequestError,
    build_invoke_request,
    is_v2_body,
    outputs_by_name,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    conn = connection_options()
    model = sub.add_parser("model", help="call a deployed model")
    cmds = model.add_subparsers(dest="action", required=True, metavar="ACTION")
    info = cmds.add_parser("info", parents=[conn], help="the model's OpenAPI document")
    _target(info)
    info.set_defaults(func=cmd_info)
    invoke = cmds.add_parser("invoke", parents=[conn], help="get a prediction")
    _target(invoke)
    body = invoke.add_mutually_exclusive_group(required=True)
    body.add_argument("--file", "--json-file", dest="file", help="JSON request body file")
    body.add_argument("--json", help="JSON request body, e.g. '{\"columns\": [...], ...}'")
    invoke.set_defaults(func=cmd_invoke)

    feedback = sub.add_parser("feedback", help="send feedback on a prediction")
    fcmds = feedback.add_subparsers(dest="action", required=True, metavar="ACTION")
    send = fcmds.add_parser("send", parents=[conn], help="send ground truth for a request")
    send.add_argument("--model", required=True, help="model name (the model-name header)")
    send.add_argument("--version", required=True, help="model version")
    send.add_argument("--request-id", required=True, help="the prediction's request-id")
    send.add_argument("--json", required=True, help="the feedback, any JSON")
    send.set_defaults(func=cmd_feedback)


def _target(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--md", "--model-deployment", dest="md", help="model deployment id")
    which.add_argument("--mr", "--model-route", dest="mr", help="model route id")


def _load_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(f"{where} is not valid JSON: {exc}") from None


def cmd_info(args: argparse.Namespace) -> int:
    def body(client: Client) -> int:
        print(json.dumps(client.model_info(client.model_url(args.md, args.mr)), indent=2))
        return 0

    return run(args, body)


def cmd_invoke(args: argparse.Namespace) -> int:
    def body(client: Client) -> int:
        if args.file:
            try:
                raw = Path(args.file).read_bytes()
            except OSError as exc:
                raise ApiError(f"cannot read {args.file}: {exc.strerror or exc}") from None
            payload = _load_json(raw.decode("utf-8", "replace"), args.file)
        else:
            raw = args.json.encode()
            payload = _load_json(args.json, "--json")
        url = client.model_url(args.md, args.mr)
        predictor, model_name = target_predictor(client, args.md, args.mr)
        openapi = None
        if predictor == TRITON_PREDICTOR and not is_v2_body(payload):
            openapi = client.model_info(url)  # the input tensor and its column order
        try:
            req = build_invoke_request(predictor, raw, model_name=model_name, openapi=openapi)
        except InvokeRequestError as exc:
            raise ApiError(f"{args.file or '--json'}: {exc}") from None
        resp = client.invoke(url, req.path, req.body, req.headers)
        answer = resp.json()
        print(json.dumps(answer))
        if predictor == TRITON_PREDICTOR and isinstance(answer, dict):
            for name, values in outputs_by_name(answer).items():
                print(f"{name}: {json.dumps(values)}", file=sys.stderr)
        print(f"request-id: {resp.headers.get('request-id', '')}", file=sys.stderr)
        return 0

    return run(args, body)


def target_predictor(client: Client, md: str | None, mr: str | None) -> tuple[str, str]:
    """The predictor behind a deployment or a route, and the model name it reports.

    A route's targets must agree: one request body cannot suit both protocols, and a
    v2 request names one model.
    """
    ids = [md] if md else [t["mdName"] for t in
                           client.get("route", mr or "")["spec"]["modelDeployments"]]
    found = {(d["spec"]["predictor"], d.get("status", {}).get("modelName") or "")
             for d in (client.get("deployment", i) for i in ids)}
    predictors = {p for p, _ in found}
    if len(predictors) > 1:
        raise ApiError(f"route {mr} mixes predictors ({', '.join(sorted(predictors))}): "
                       "invoke one deployment with --md")
    predictor = predictors.pop()
    names = {n for _, n in found if n}
    if predictor == TRITON_PREDICTOR and len(names) > 1:
        raise ApiError(f"route {mr} serves different Triton models ({', '.join(sorted(names))})"
                       ": invoke one deployment with --md")
    return predictor, names.pop() if names else ""


def cmd_feedback(args: argparse.Namespace) -> int:
    def body(client: Client) -> int:
        answer = client.send_feedback(args.model, args.version, args.request_id,
                                      _load_json(args.json, "--json"))
        print(json.dumps(answer))
        return 0

    return run(args, body)
