"""The model's OpenAPI document: real names, types and examples, and a valid structure."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from predictor.openapi import build_openapi, kind_schema
from predictor.schema import Column

INPUTS = [
    Column("fixed acidity", "double"),
    Column("pH", "double"),
    Column("year", "long"),
    Column("grape", "string", required=False),
]
EXAMPLE_COLUMNS = ["fixed acidity", "pH", "year", "grape"]
EXAMPLE_ROWS = [[6.0, 3.09, 2019, "riesling"], [5.4, 3.2, 2020, None]]


def _doc(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "model_name": "wine",
        "model_version": "1.0",
        "inputs": INPUTS,
        "outputs": [Column("quality", "double")],
        "example_columns": EXAMPLE_COLUMNS,
        "example_rows": EXAMPLE_ROWS,
        "example_prediction": [5.9, 6.1],
        "prediction_columns": ["quality"],
        "example_predictions": [5.9, 6.1],
    }
    args.update(overrides)
    return build_openapi(**args)


_JSON_TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
}


def conforms(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """The OpenAPI 3.0 schema keywords this document uses, checked against a value."""
    if value is None:
        return [] if schema.get("nullable") or not schema else [f"{path}: null not allowed"]
    errors: list[str] = []
    if "anyOf" in schema:
        if all(conforms(value, s, path) for s in schema["anyOf"]):
            errors.append(f"{path}: matches no anyOf branch")
        return errors
    kind = schema.get("type")
    if kind is not None:
        expected = _JSON_TYPES[kind]
        if isinstance(value, bool) and kind in ("integer", "number"):
            return [f"{path}: boolean is not {kind}"]
        if not isinstance(value, expected):
            return [f"{path}: {value!r} is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in enum")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", 1 << 30):
            errors.append(f"{path}: wrong number of items")
        for i, item in enumerate(value):
            errors += conforms(item, schema.get("items", {}), f"{path}[{i}]")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}: missing {name}")
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                errors += conforms(value[name], sub, f"{path}.{name}")
    return errors


def walk_schemas(doc: dict[str, Any]):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody", {}).get("content", {})
            for media in body.values():
                yield f"{method} {path} request", media
            for status, response in op["responses"].items():
                for media in response.get("content", {}).values():
                    yield f"{method} {path} {status}", media


def test_structure_is_openapi_3() -> None:
    doc = _doc()
    assert doc["openapi"].startswith("3.0.")
    assert doc["info"] == {
        "title": "wine",
        "version": "1.0",
        "description": doc["info"]["description"],
    }
    assert set(doc["paths"]) == {
        "/api/model/invoke",
        "/api/model/info",
        "/healthcheck",
        "/invocations",
    }
    assert "post" in doc["paths"]["/api/model/invoke"]
    assert "post" in doc["paths"]["/invocations"]
    for item in doc["paths"].values():
        for op in item.values():
            assert op["responses"], op
            assert all(isinstance(code, str) for code in op["responses"])
            assert op["operationId"]
    assert "$ref" not in orjson.dumps(doc).decode()
    assert doc["x-mlgate"] == {"model_name": "wine", "model_version": "1.0", "has_examples": True}


def test_every_example_fits_its_schema() -> None:
    doc = _doc()
    checked = 0
    for where, media in walk_schemas(doc):
        if "example" in media:
            assert conforms(media["example"], media["schema"]) == [], where
            checked += 1
    assert checked >= 4


def test_request_schema_has_real_names_types_and_examples() -> None:
    op = _doc()["paths"]["/api/model/invoke"]["post"]
    media = op["requestBody"]["content"]["application/json"]
    props = media["schema"]["properties"]
    assert props["columns"]["items"]["enum"] == EXAMPLE_COLUMNS
    assert props["columns"]["example"] == EXAMPLE_COLUMNS
    assert props["data"]["example"] == EXAMPLE_ROWS
    row = props["data"]["items"]
    assert row["minItems"] == row["maxItems"] == 4
    assert "fixed acidity (double)" in row["description"]
    assert media["example"] == {"columns": EXAMPLE_COLUMNS, "data": EXAMPLE_ROWS}

    records = op_records(_doc())
    assert records["properties"]["pH"] == {"type": "number", "format": "double", "example": 3.09}
    assert records["properties"]["year"] == {"type": "integer", "format": "int64", "example": 2019}
    assert records["properties"]["grape"]["nullable"] is True
    assert records["required"] == ["fixed acidity", "pH", "year"]


def op_records(doc: dict[str, Any]) -> dict[str, Any]:
    media = doc["paths"]["/invocations"]["post"]["requestBody"]["content"]["application/json"]
    return media["schema"]["properties"]["dataframe_records"]["items"]


def test_response_schema_has_the_real_output() -> None:
    op = _doc()["paths"]["/api/model/invoke"]["post"]
    media = op["responses"]["200"]["content"]["application/json"]
    assert media["example"] == {"prediction": [5.9, 6.1], "columns": ["quality"]}
    props = media["schema"]["properties"]
    assert props["prediction"]["items"] == {"type": "number", "format": "double"}
    assert props["columns"]["items"]["enum"] == ["quality"]
    error = op["responses"]["400"]["content"]["application/json"]["schema"]
    assert error["required"] == ["message"]


def test_without_signature_or_example_the_document_is_generic() -> None:
    doc = _doc(
        inputs=None,
        outputs=None,
        example_columns=None,
        example_rows=None,
        example_prediction=None,
        prediction_columns=["prediction"],
        example_predictions=None,
    )
    assert doc["x-mlgate"]["has_examples"] is False
    media = doc["paths"]["/api/model/invoke"]["post"]["requestBody"]["content"]["application/json"]
    assert "example" not in media
    assert media["schema"]["properties"]["data"]["items"] == {"type": "array", "items": {}}
    for where, media in walk_schemas(doc):
        if "example" in media:
            assert conforms(media["example"], media["schema"]) == [], where
    orjson.dumps(doc)


@pytest.mark.parametrize(
    ("kind", "schema"),
    [
        ("double", {"type": "number", "format": "double"}),
        ("float", {"type": "number", "format": "float"}),
        ("long", {"type": "integer", "format": "int64"}),
        ("integer", {"type": "integer", "format": "int32"}),
        ("boolean", {"type": "boolean"}),
        ("string", {"type": "string"}),
        ("binary", {"type": "string", "format": "byte"}),
        ("datetime", {"type": "string", "format": "date-time"}),
        ("any", {}),
    ],
)
def test_kind_schemas(kind: str, schema: dict[str, Any]) -> None:
    assert kind_schema(kind) == schema


def test_schema_checker_catches_mismatches() -> None:
    schema = {"type": "array", "items": {"type": "number"}, "maxItems": 1}
    assert conforms([1.5], schema) == []
    assert conforms(["x"], schema)
    assert conforms([1, 2], schema)
    assert conforms([True], schema)


def test_an_input_example_without_output_is_not_a_full_example() -> None:
    doc = _doc(example_prediction=None, example_predictions=None)
    assert doc["x-mlgate"]["has_examples"] is False
    media = doc["paths"]["/api/model/invoke"]["post"]["requestBody"]["content"]["application/json"]
    assert media["example"]["data"] == EXAMPLE_ROWS
