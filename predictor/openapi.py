"""The OpenAPI 3.0 document of one served model, built once at load.

Pure: the model's signature columns and its input example in, a JSON-ready dict out.
Schemas are inlined (no ``$ref``) so that a catalog can mount several models'
documents under different prefixes without name clashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from predictor.schema import Column

OPENAPI_VERSION = "3.0.3"
INVOKE_PATH = "/api/model/invoke"
INFO_PATH = "/api/model/info"
HEALTH_PATH = "/healthcheck"
INVOCATIONS_PATH = "/invocations"

_KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "boolean": {"type": "boolean"},
    "integer": {"type": "integer", "format": "int32"},
    "long": {"type": "integer", "format": "int64"},
    "float": {"type": "number", "format": "float"},
    "double": {"type": "number", "format": "double"},
    "string": {"type": "string"},
    "binary": {"type": "string", "format": "byte"},
    "datetime": {"type": "string", "format": "date-time"},
}
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["message"],
    "properties": {"message": {"type": "string", "example": 'missing columns: "pH"'}},
}


def kind_schema(kind: str) -> dict[str, Any]:
    """JSON schema of one value of an MLflow column type (``{}``: any value)."""
    return dict(_KIND_SCHEMAS.get(kind, {}))


def _column_schema(column: Column, example: Any, has_example: bool) -> dict[str, Any]:
    schema = kind_schema(column.kind)
    if not column.required:
        schema["nullable"] = True
    if has_example:
        schema["example"] = example
    return schema


def _value_schema(columns: Sequence[Column]) -> dict[str, Any]:
    """Schema of any one value of a row: the union of the column types."""
    schemas: list[dict[str, Any]] = []
    for column in columns:
        schema = kind_schema(column.kind)
        if not schema:
            return {}
        if not column.required:
            schema["nullable"] = True
        if schema not in schemas:
            schemas.append(schema)
    if not schemas:
        return {}
    if len(schemas) == 1:
        return schemas[0]
    union: dict[str, Any] = {"anyOf": schemas}
    if any(not c.required for c in columns):
        union["nullable"] = True
    return union


def _first_row_by_name(
    example_columns: Sequence[str] | None, example_rows: Sequence[Sequence[Any]] | None
) -> dict[str, Any]:
    if not example_columns or not example_rows:
        return {}
    return dict(zip(example_columns, example_rows[0], strict=False))


def _json_body(schema: dict[str, Any], example: Any | None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"content": {"application/json": media}}


def _errors() -> dict[str, Any]:
    return {
        "400": {
            "description": "The request does not fit the model",
            **_json_body(_ERROR_SCHEMA, None),
        },
        "500": {"description": "The model failed", **_json_body(_ERROR_SCHEMA, None)},
    }


def build_openapi(
    *,
    model_name: str,
    model_version: str,
    inputs: Sequence[Column] | None,
    outputs: Sequence[Column] | None,
    example_columns: Sequence[str] | None,
    example_rows: Sequence[Sequence[Any]] | None,
    example_prediction: Sequence[Any] | None,
    prediction_columns: Sequence[str],
    example_predictions: Any | None = None,
) -> dict[str, Any]:
    """OpenAPI document of ``/api/model/invoke`` (and friends) for one model.

    ``inputs``/``outputs`` are the signature's columns (``None``: no column-based
    signature); ``example_*`` come from the model's input example and the model's
    own prediction on it (``None``: the model has no example): ``example_prediction``
    as ``/api/model/invoke`` answers it, ``example_predictions`` as ``/invocations`` does.
    """
    has_rows = bool(example_rows)
    # the service catalog lists a model only with both an input and an output example
    has_examples = has_rows and example_prediction is not None
    names = [c.name if c.name is not None else str(i) for i, c in enumerate(inputs or ())]
    by_name = _first_row_by_name(example_columns, example_rows)

    if inputs:
        columns_schema: dict[str, Any] = {
            "type": "array",
            "description": "Column names, in any order; omit to send rows in this order.",
            "items": {"type": "string", "enum": names},
            "example": list(example_columns) if has_rows and example_columns else names,
        }
        row_schema: dict[str, Any] = {
            "type": "array",
            "description": "One value per column, in the order of `columns`: "
            + ", ".join(f"{n} ({c.kind})" for n, c in zip(names, inputs, strict=True)),
            "minItems": len(inputs),
            "maxItems": len(inputs),
            "items": _value_schema(inputs),
        }
        record_schema: dict[str, Any] = {
            "type": "object",
            "required": [n for n, c in zip(names, inputs, strict=True) if c.required],
            "properties": {
                n: _column_schema(c, by_name.get(n), n in by_name)
                for n, c in zip(names, inputs, strict=True)
            },
        }
    else:
        columns_schema = {"type": "array", "items": {"type": "string"}}
        row_schema = {"type": "array", "items": {}}
        record_schema = {"type": "object", "additionalProperties": True}

    data_schema: dict[str, Any] = {"type": "array", "items": row_schema}
    if has_rows:
        data_schema["example"] = [list(r) for r in example_rows or ()]
    invoke_request = {
        "type": "object",
        "required": ["data"],
        "properties": {"columns": columns_schema, "data": data_schema},
    }

    out_kinds = [c.kind for c in outputs or ()]
    prediction_items = kind_schema(out_kinds[0]) if len(out_kinds) == 1 else {}
    prediction_schema: dict[str, Any] = {
        "type": "array",
        "description": "One prediction per row (a list when the model has several outputs).",
        "items": prediction_items,
    }
    if example_prediction is not None:
        prediction_schema["example"] = list(example_prediction)
    invoke_response = {
        "type": "object",
        "required": ["prediction", "columns"],
        "properties": {
            "prediction": prediction_schema,
            "columns": {
                "type": "array",
                "items": {"type": "string", "enum": list(prediction_columns)},
                "example": list(prediction_columns),
            },
        },
    }

    invoke_example = (
        {"columns": list(example_columns or names), "data": [list(r) for r in example_rows or ()]}
        if has_rows
        else None
    )
    response_example = (
        {"prediction": list(example_prediction), "columns": list(prediction_columns)}
        if example_prediction is not None
        else None
    )
    invocations_example = (
        {"dataframe_split": invoke_example} if invoke_example is not None else None
    )
    invocations_request = {
        "type": "object",
        "description": "MLflow scoring protocol: exactly one of the four input fields.",
        "properties": {
            "dataframe_split": invoke_request,
            "dataframe_records": {"type": "array", "items": record_schema},
            "instances": {"type": "array", "items": {}},
            "inputs": {},
            "params": {"type": "object"},
        },
    }
    invocations_response = {
        "type": "object",
        "required": ["predictions"],
        "properties": {"predictions": {"type": "array", "items": prediction_items}},
    }

    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": model_name,
            "version": model_version,
            "description": f"Model {model_name} {model_version}, served by the mlgate "
            "odahu-ml-server predictor.",
        },
        "paths": {
            INVOKE_PATH: {
                "post": {
                    "summary": "Predict for a batch of rows",
                    "operationId": "invoke",
                    "requestBody": {"required": True, **_json_body(invoke_request, invoke_example)},
                    "responses": {
                        "200": {
                            "description": "One prediction per row",
                            **_json_body(invoke_response, response_example),
                        },
                        **_errors(),
                    },
                }
            },
            INFO_PATH: {
                "get": {
                    "summary": "This document",
                    "operationId": "info",
                    "responses": {"200": {"description": "OpenAPI document of the model"}},
                }
            },
            HEALTH_PATH: {
                "get": {
                    "summary": "Ready once the model is loaded",
                    "operationId": "healthcheck",
                    "responses": {
                        "200": {
                            "description": "The model is loaded",
                            **_json_body(
                                {"type": "object", "properties": {"status": {"type": "string"}}},
                                {"status": "ok"},
                            ),
                        }
                    },
                }
            },
            INVOCATIONS_PATH: {
                "post": {
                    "summary": "Predict, MLflow scoring protocol",
                    "operationId": "invocations",
                    "requestBody": {
                        "required": True,
                        **_json_body(invocations_request, invocations_example),
                    },
                    "responses": {
                        "200": {
                            "description": "Predictions",
                            **_json_body(
                                invocations_response,
                                {"predictions": example_predictions}
                                if example_predictions is not None
                                else None,
                            ),
                        },
                        **_errors(),
                    },
                }
            },
        },
        "x-mlgate": {
            "model_name": model_name,
            "model_version": model_version,
            "has_examples": has_examples,
        },
    }
