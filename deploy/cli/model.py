"""``mlgate model info|invoke`` and ``mlgate feedback send``: call deployed models from the shell.

Like ``odahuflowctl model``, a model is found by deployment (``--md``: its default
route) or by route (``--mr``), through the API's ``status.edgeUrl``. ``invoke`` sends
what the deployment's predictor speaks (:mod:`mlgate.v2`): the file as it is
to ``/api/model/invoke`` for ``odahu-ml-server``, a KServe v2 infer request for
``triton`` (an ODAHU ``{"columns", "data"}`` file becomes one tensor). The calls are the
Python SDK's (:mod:`mlgate`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import mlgate
from deploy.cli.resources import connection_options, run
from mlgate.v2 import outputs_by_name


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
        raise ValueError(f"{where} is not valid JSON: {exc}") from None


def _which(args: argparse.Namespace) -> tuple[str, bool]:
    return (args.md, False) if args.md else (args.mr, True)


def cmd_info(args: argparse.Namespace) -> int:
    def body(client: mlgate.Client) -> int:
        target, route = _which(args)
        print(json.dumps(client.info(target, route=route), indent=2))
        return 0

    return run(args, body)


def cmd_invoke(args: argparse.Namespace) -> int:
    def body(client: mlgate.Client) -> int:
        if args.file:
            try:
                raw = Path(args.file).read_bytes()
            except OSError as exc:
                raise ValueError(f"cannot read {args.file}: {exc.strerror or exc}") from None
            _load_json(raw.decode("utf-8", "replace"), args.file)
        else:
            raw = args.json.encode()
            _load_json(args.json, "--json")
        target, route = _which(args)
        try:
            resp = client.invoke_raw(target, raw, route=route)
        except ValueError as exc:  # cannot be sent to this predictor
            raise ValueError(f"{args.file or '--json'}: {exc}") from None
        answer = resp.json()
        print(json.dumps(answer))
        if isinstance(answer, dict) and "outputs" in answer:
            for name, values in outputs_by_name(answer).items():
                print(f"{name}: {json.dumps(values)}", file=sys.stderr)
        print(f"request-id: {resp.headers.get('request-id', '')}", file=sys.stderr)
        return 0

    return run(args, body)


def cmd_feedback(args: argparse.Namespace) -> int:
    def body(client: mlgate.Client) -> int:
        answers = client.feedback(args.request_id, _load_json(args.json, "--json"),
                                  model=args.model, version=args.version)
        print(json.dumps(answers[0]))
        return 0

    return run(args, body)
