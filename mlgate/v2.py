"""Model requests by predictor (``Client.invoke``, ``mlgate model invoke``): path and body — pure.

* ``odahu-ml-server``: ``POST /api/model/invoke`` with the file as it is.
* ``triton``: ``POST /v2/models/<name>/infer`` (KServe v2). A file that already is a
  v2 body (``{"inputs": [...]}``) is sent byte for byte; an ODAHU body
  (``{"columns": [...], "data": [[...]]}``, also MLflow's ``{"dataframe_split": ...}``)
  is turned into one ``[rows, columns]`` tensor, columns reordered to the model's
  order when the deployment's OpenAPI document (``/api/model/info``) names it.

Paths are relative to the deployment's mount, ``/model/<deployment id>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

ODAHU_PREDICTOR = "odahu-ml-server"
TRITON_PREDICTOR = "triton"
INVOKE_PATH = "/api/model/invoke"
DEFAULT_INPUT = "input0"
DEFAULT_DATATYPE = "FP32"
JSON_HEADERS = {"Content-Type": "application/json"}


class InvokeRequestError(ValueError):
    """The file cannot be sent to this deployment; the message says why."""


@dataclass(frozen=True)
class InvokeRequest:
    path: str  # below /model/<deployment id>
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: dict(JSON_HEADERS))


@dataclass(frozen=True)
class V2Input:
    """The single ``[-1, N]`` input tensor of a model, as its OpenAPI document names it."""

    name: str = DEFAULT_INPUT
    datatype: str = DEFAULT_DATATYPE
    columns: tuple[str, ...] = ()


def infer_path(model_name: str, version: str | None = None) -> str:
    if not model_name:
        raise InvokeRequestError("the Triton model name is unknown (deployment not ready?)")
    if version:
        return f"/v2/models/{model_name}/versions/{version}/infer"
    return f"/v2/models/{model_name}/infer"


def is_v2_body(payload: Any) -> bool:
    return isinstance(payload, dict) and isinstance(payload.get("inputs"), list)


def v2_input_from_openapi(document: Mapping[str, Any] | None) -> V2Input:
    """Input name, datatype and column order from a Triton deployment's OpenAPI document."""
    meta = (document or {}).get("x-mlgate") or {}
    inputs = meta.get("inputs") or []
    columns = tuple(str(c) for c in meta.get("input_columns") or ())
    if len(inputs) == 1 and isinstance(inputs[0], Mapping):
        return V2Input(str(inputs[0].get("name", DEFAULT_INPUT)),
                       str(inputs[0].get("datatype", DEFAULT_DATATYPE)), columns)
    return V2Input(columns=columns)


def table_from_payload(payload: Any) -> tuple[list[str] | None, list[list[Any]]]:
    """``(columns, rows)`` of an ODAHU ``{"columns", "data"}`` or an MLflow ``dataframe_split``."""
    if isinstance(payload, dict) and isinstance(payload.get("dataframe_split"), dict):
        payload = payload["dataframe_split"]
    if not isinstance(payload, dict) or "data" not in payload:
        raise InvokeRequestError(
            'expected a KServe v2 body {"inputs": [...]} or {"columns": [...], "data": [[...]]}')
    columns, rows = payload.get("columns"), payload["data"]
    if columns is not None and (not isinstance(columns, list)
                                or not all(isinstance(c, str) for c in columns)):
        raise InvokeRequestError('"columns" must be a list of column names')
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        raise InvokeRequestError('"data" must be a non-empty list of rows, each a list')
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise InvokeRequestError(f"rows have different lengths: {sorted(widths)}")
    if columns is not None and widths != {len(columns)}:
        raise InvokeRequestError(f"{len(columns)} columns but rows of {widths.pop()} values")
    return columns, rows


def infer_body(columns: Sequence[str] | None, rows: Sequence[Sequence[Any]],
               spec: V2Input = V2Input()) -> dict[str, Any]:
    """One ``[len(rows), N]`` tensor; rows reordered to ``spec.columns`` when both are named."""
    if columns is not None and spec.columns and list(columns) != list(spec.columns):
        unknown = [c for c in columns if c not in spec.columns]
        missing = [c for c in spec.columns if c not in columns]
        if unknown or missing or len(set(columns)) != len(columns):
            problems = []
            if unknown:
                problems.append(f"unknown columns: {', '.join(unknown)}")
            if missing:
                problems.append(f"missing columns: {', '.join(missing)}")
            raise InvokeRequestError("; ".join(problems) or "duplicate columns")
        position = {c: i for i, c in enumerate(columns)}
        rows = [[row[position[c]] for c in spec.columns] for row in rows]
    width = len(rows[0]) if rows else 0
    if spec.columns and width != len(spec.columns):
        raise InvokeRequestError(
            f"rows have {width} values, the model takes {len(spec.columns)} columns")
    return {"inputs": [{"name": spec.name, "shape": [len(rows), width],
                        "datatype": spec.datatype, "data": [list(r) for r in rows]}]}


def build_invoke_request(predictor: str, body: bytes, *, model_name: str | None = None,
                         model_version: str | None = None,
                         openapi: Mapping[str, Any] | None = None) -> InvokeRequest:
    """What ``mlgate model invoke --file`` sends for a deployment with this predictor.

    ``model_name`` is the deployment's ``status.modelName`` (for Triton, the model's
    v2 name); without it the name in ``openapi`` is used.
    """
    if predictor != TRITON_PREDICTOR:
        return InvokeRequest(INVOKE_PATH, body)
    name = model_name or ((openapi or {}).get("x-mlgate") or {}).get("model_name")
    path = infer_path(str(name or ""), model_version)
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvokeRequestError(f"the request file is not JSON: {exc}") from None
    if is_v2_body(payload):
        return InvokeRequest(path, body)
    columns, rows = table_from_payload(payload)
    return InvokeRequest(path, orjson.dumps(infer_body(columns, rows,
                                                       v2_input_from_openapi(openapi))))


def outputs_by_name(response: Mapping[str, Any]) -> dict[str, list[Any]]:
    """A v2 JSON answer's outputs as ``{name: flat data}`` (for printing)."""
    out: dict[str, list[Any]] = {}
    for tensor in response.get("outputs") or []:
        data = tensor.get("data")
        out[str(tensor.get("name"))] = list(flatten(data)) if data is not None else []
    return out


def flatten(value: Any) -> Any:
    """The scalars of nested lists, in order."""
    if isinstance(value, list):
        for item in value:
            yield from flatten(item)
    else:
        yield value
