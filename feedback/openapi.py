"""OpenAPI path items of the feedback endpoints, for the gateway's ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from .handlers import SDK_PATH, SEED_PATH

SAFE_SEGMENT = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
REQUEST_ID = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
SEED_ERROR = {"$ref": "#/components/schemas/SeedFeedbackError"}
SDK_ERROR = {"$ref": "#/components/schemas/Error"}


def _header(name: str, pattern: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": True,
            "schema": {"type": "string", "pattern": pattern}}


def _errors(schema: dict[str, Any]) -> dict[str, Any]:
    text = {400: "Missing or unsafe header, or a body that is not JSON",
            401: "No valid bearer token", 403: "The policy denies feedback",
            408: "Request body not received in time", 413: "Request body too large",
            503: "Storage unavailable; retry after Retry-After seconds"}
    out = {}
    for status, description in text.items():
        item: dict[str, Any] = {"description": description,
                                "content": {"application/json": {"schema": schema}}}
        if status in (401, 403):
            item["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        out[str(status)] = item
    return out


def openapi_paths() -> dict[str, Any]:
    body = {"required": True, "description": "Any JSON document: the ground truth",
            "content": {"application/json": {"schema": {}}}}
    return {
        SEED_PATH + "/": {"post": {
            "summary": "Feedback for a logged prediction (seed form)",
            "operationId": "feedbackSeed",
            "parameters": [_header("x-model-name", SAFE_SEGMENT),
                           _header("x-model-version", SAFE_SEGMENT),
                           _header("Request-ID", REQUEST_ID)],
            "requestBody": body,
            "responses": {"200": {"description": "Stored durably", "content": {
                "application/json": {"schema": {
                    "$ref": "#/components/schemas/SeedFeedbackResponse"}}}},
                **_errors(SEED_ERROR)},
        }},
        SDK_PATH: {"post": {
            "summary": "Feedback for a logged prediction (ODAHU SDK form)",
            "operationId": "feedbackSdk",
            "parameters": [_header("model-name", SAFE_SEGMENT),
                           _header("model-version", SAFE_SEGMENT),
                           _header("request-id", REQUEST_ID)],
            "requestBody": body,
            "responses": {"200": {"description": "Stored durably", "content": {
                "application/json": {"schema": {
                    "$ref": "#/components/schemas/SdkFeedbackResponse"}}}},
                **_errors(SDK_ERROR)},
        }},
    }


def openapi_schemas() -> dict[str, Any]:
    return {
        "SeedFeedbackResponse": {"type": "object", "required": ["error", "registered", "message"],
                                 "properties": {
            "error": {"const": False}, "registered": {"const": True},
            "message": {"type": "object",
                        "required": ["RequestID", "ModelVersion", "ModelName", "Payload"],
                        "properties": {"RequestID": {"type": "string"},
                                       "ModelVersion": {"type": "string"},
                                       "ModelName": {"type": "string"},
                                       "Payload": {"type": "object", "required": ["json"]}}}}},
        "SeedFeedbackError": {"type": "object", "required": ["error", "registered", "message"],
                              "properties": {"error": {"const": True},
                                             "registered": {"const": False},
                                             "message": {"type": "string"}}},
        "SdkFeedbackResponse": {"type": "object",
                                "required": ["requestID", "modelVersion", "modelName", "payload"],
                                "properties": {"requestID": {"type": "string"},
                                               "modelVersion": {"type": "string"},
                                               "modelName": {"type": "string"},
                                               "payload": {"type": "object",
                                                           "required": ["json"]}}},
    }
