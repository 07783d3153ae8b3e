"""The OpenAPI 3.0 document of a model served by Triton (KServe v2 protocol) — pure.

Built from the model's v2 metadata (``GET /v2/models/<name>``: input and output
names, datatypes, shapes), an example infer body and the answer Triton gave to it.
Paths are concrete (the model's own name), schemas inlined, as in
:mod:`predictor.openapi`, so a catalog can mount several documents side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from predictor.openapi import INFO_PATH, OPENAPI_VERSION

V2_DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                "INT64", "FP16", "FP32", "FP64", "BYTES", "BF16")
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string",
                             "example": "unexpected shape for input 'input0' for model 'wine'"}},
}
_READY_PATHS = ("/v2/health/ready", "/v2/health/live")


def infer_path(model_name: str) -> str:
    return f"/v2/models/{model_name}/infer"


def metadata_path(model_name: str) -> str:
    return f"/v2/models/{model_name}"


def _value_schema(datatype: str) -> dict[str, Any]:
    if datatype == "BOOL":
        return {"type": "boolean"}
    if datatype.startswith(("INT", "UINT")):
        return {"type": "integer"}
    if datatype in ("FP16", "FP32", "FP64", "BF16"):
        return {"type": "number"}
    return {"type": "string"}


def _nested_data_schema(datatype: str) -> dict[str, Any]:
    """``data`` is a flat list or nested row lists, row-major."""
    value = _value_schema(datatype)
    return {"type": "array", "items": {"anyOf": [value, {"type": "array", "items": value}]}}


def _shape_description(shape: Sequence[int]) -> str:
    return "[" + ", ".join("any" if d < 0 else str(d) for d in shape) + "]"


def _tensor_schema(tensor: Mapping[str, Any], description: str | None) -> dict[str, Any]:
    datatype = str(tensor.get("datatype", "BYTES"))
    shape = [int(d) for d in tensor.get("shape", [])]
    schema: dict[str, Any] = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string", "enum": [tensor["name"]]},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 0},
                      "minItems": len(shape), "maxItems": len(shape),
                      "description": f"declared shape {_shape_description(shape)}"},
            "datatype": {"type": "string", "enum": [datatype]},
            "parameters": {"type": "object", "properties": {
                "binary_data_size": {"type": "integer",
                                     "description": "binary tensor extension: bytes of this "
                                     "tensor after the JSON header"}}},
            "data": _nested_data_schema(datatype),
        },
    }
    if description:
        schema["description"] = description
    return schema


def _json_body(schema: dict[str, Any], example: Any | None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"content": {"application/json": media}}


def _error_responses() -> dict[str, Any]:
    return {
        "400": {"description": "The request does not fit the model (unknown input, wrong "
                "shape or datatype, unknown model)", **_json_body(_ERROR_SCHEMA, None)},
        "500": {"description": "The model failed", **_json_body(_ERROR_SCHEMA, None)},
    }


def build_triton_openapi(
    metadata: Mapping[str, Any],
    *,
    model_version: str,
    input_columns: Sequence[str] | None = None,
    example_request: Mapping[str, Any] | None = None,
    example_response: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """OpenAPI document of the v2 endpoints of one Triton model.

    ``metadata`` is Triton's answer to ``GET /v2/models/<name>``; ``input_columns``
    names the columns of a single ``[-1, N]`` input tensor, in order (the model's
    signature), so clients know what each position means.
    """
    name = str(metadata["name"])
    inputs = list(metadata.get("inputs") or [])
    outputs = list(metadata.get("outputs") or [])
    single_described = len(inputs) == 1 and input_columns
    column_note = (
        "Columns, in this order: " + ", ".join(input_columns) if single_described else None)
    input_schemas = [_tensor_schema(t, column_note) for t in inputs]
    output_schemas = [_tensor_schema(t, None) for t in outputs]
    output_names = [t["name"] for t in outputs]

    infer_request = {
        "type": "object",
        "required": ["inputs"],
        "properties": {
            "id": {"type": "string", "description": "echoed in the answer"},
            "parameters": {"type": "object", "properties": {
                "binary_data_output": {"type": "boolean"}}},
            "inputs": {"type": "array", "items": {"oneOf": input_schemas} if input_schemas
                       else {"type": "object"},
                       "minItems": len(inputs), "maxItems": len(inputs)},
            "outputs": {"type": "array", "description": "outputs to return (default: all)",
                        "items": {"type": "object", "required": ["name"], "properties": {
                            "name": {"type": "string", "enum": output_names},
                            "parameters": {"type": "object", "properties": {
                                "binary_data": {"type": "boolean"}}}}}},
        },
    }
    infer_response = {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string", "example": name},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": {"oneOf": output_schemas} if output_schemas
                        else {"type": "object"}},
        },
    }
    metadata_schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": {"type": "object"}},
            "outputs": {"type": "array", "items": {"type": "object"}},
        },
    }
    ready = {"200": {"description": "Ready"}, "400": {"description": "Not ready"}}
    paths: dict[str, Any] = {
        infer_path(name): {"post": {
            "summary": "Predict (KServe v2 inference protocol)",
            "operationId": "infer",
            "description": "JSON tensors, or Triton's binary tensor extension: a JSON header "
            "of `Inference-Header-Content-Length` bytes followed by the raw tensors.",
            "requestBody": {"required": True, **_json_body(infer_request, example_request)},
            "responses": {"200": {"description": "The output tensors",
                                  **_json_body(infer_response, example_response)},
                          **_error_responses()},
        }},
        metadata_path(name): {"get": {
            "summary": "Model metadata: inputs and outputs",
            "operationId": "model_metadata",
            "responses": {"200": {"description": "Metadata",
                                  **_json_body(metadata_schema, dict(metadata))},
                          "400": {"description": "Unknown model",
                                  **_json_body(_ERROR_SCHEMA, None)}},
        }},
        f"{metadata_path(name)}/ready": {"get": {
            "summary": "Ready once the model is loaded", "operationId": "model_ready",
            "responses": ready}},
        INFO_PATH: {"get": {
            "summary": "This document", "operationId": "info",
            "responses": {"200": {"description": "OpenAPI document of the model"}}}},
    }
    for path in _READY_PATHS:
        paths[path] = {"get": {"summary": f"Server {path.rsplit('/', 1)[1]}",
                               "operationId": path.rsplit("/", 1)[1], "responses": ready}}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": name,
            "version": model_version,
            "description": f"Model {name} {model_version}, served by NVIDIA Triton "
            "(KServe v2 inference protocol) through mlgate.",
        },
        "paths": paths,
        "x-mlgate": {
            "model_name": name,
            "model_version": model_version,
            "predictor": "triton",
            "has_examples": example_request is not None and example_response is not None,
            "input_columns": list(input_columns or []),
            "inputs": [dict(t) for t in inputs],
            "outputs": [dict(t) for t in outputs],
        },
    }
