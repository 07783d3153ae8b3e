"""The gateway's OpenAPI 3.1 document, served at ``GET /openapi.json``.

The gateway describes its own paths; other packages mounted on the same app
(feedback, the management API) hand in their path items and schemas. The
``deployment`` parameter enumerates the deployments the routing table holds when
the document is asked for, so clients and fuzzers see real ids.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from .request_id import REQUEST_ID_PATTERN
from .routing import RouteTable

OPENAPI_PATH = "/openapi.json"
DEPLOYMENT_ID_PATTERN = "^[a-z][a-z0-9-]{0,62}$"

ERROR = {"$ref": "#/components/schemas/Error"}


def json_content(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": dict(schema)}}


def error_responses(*statuses: int, schema: Mapping[str, Any] = ERROR) -> dict[str, Any]:
    """Documented error answers; 401 and 403 also carry ``WWW-Authenticate``."""
    text = {400: "Bad request (invalid Request-ID, escaping path, malformed input)",
            401: "No valid bearer token", 403: "The policy denies this action",
            404: "No such deployment or path", 405: "Method not allowed",
            408: "Request body not received in time", 413: "Request body too large",
            502: "A replica refused or broke the connection",
            503: "No ready replica, or the token issuer's keys are unavailable",
            504: "A replica did not answer in time"}
    out: dict[str, Any] = {}
    for status in statuses:
        item: dict[str, Any] = {"description": text[status], "content": json_content(schema)}
        if status in (401, 403):
            item["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        out[str(status)] = item
    return out


REQUEST_ID_PARAM = {
    "name": "Request-ID", "in": "header", "required": False,
    "description": "Kept and echoed back; generated (UUID4) when absent",
    "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN.pattern},
}
GATEWAY_ERRORS = (400, 401, 403, 404, 408, 413, 502, 503, 504)


def gateway_paths() -> dict[str, Any]:
    deployment = {"name": "deployment", "in": "path", "required": True,
                  "schema": {"type": "string", "pattern": DEPLOYMENT_ID_PATTERN}}
    return {
        "/model/{deployment}/api/model/invoke": {"post": {
            "summary": "Invoke a model deployment", "operationId": "invokeModel",
            "parameters": [deployment, REQUEST_ID_PARAM],
            "requestBody": {"required": True, "content": json_content(
                {"$ref": "#/components/schemas/InvokeRequest"})},
            "responses": {
                "200": {"description": "The model's prediction", "content": json_content(
                    {"$ref": "#/components/schemas/InvokeResponse"})},
                **error_responses(*GATEWAY_ERRORS)},
        }},
        "/model/{deployment}/api/model/info": {"get": {
            "summary": "The deployment's own OpenAPI document", "operationId": "modelInfo",
            "parameters": [deployment, REQUEST_ID_PARAM],
            "responses": {"200": {"description": "OpenAPI document of the model",
                                  "content": json_content({"type": "object"})},
                          **error_responses(*GATEWAY_ERRORS)},
        }},
        "/health": {"get": {
            "summary": "Liveness of the gateway", "operationId": "health", "security": [],
            "responses": {"200": {"description": "Alive", "content": json_content({
                "type": "object", "required": ["status"],
                "properties": {"status": {"const": "ok"}}})}},
        }},
        OPENAPI_PATH: {"get": {
            "summary": "This document", "operationId": "openapi",
            "responses": {"200": {"description": "OpenAPI 3.1 document",
                                  "content": json_content({"type": "object"})},
                          **error_responses(400, 401, 403)},
        }},
    }


def gateway_schemas() -> dict[str, Any]:
    return {
        "Error": {"type": "object", "required": ["message"],
                  "properties": {"message": {"type": "string"},
                                 "reason": {"type": "string"}}},
        "InvokeRequest": {"type": "object", "required": ["data"], "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "data": {"type": "array", "items": {"type": "array"}}}},
        "InvokeResponse": {"type": "object", "required": ["prediction"], "properties": {
            "prediction": {"type": "array"},
            "columns": {"type": "array", "items": {"type": "string"}}}},
    }


def build_document(paths: Mapping[str, Any], schemas: Mapping[str, Any],
                   deployments: list[str]) -> dict[str, Any]:
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "mlgate", "version": "1", "description": (
            "Inference gateway and feedback service. Every operation but /health and "
            "/metrics needs `Authorization: Bearer <JWT>`; see SECURITY.md.")},
        "paths": copy.deepcopy(dict(paths)),
        "components": {
            "schemas": dict(schemas),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "bearerFormat": "JWT"}}},
        "security": [{"bearerAuth": []}],
    }
    if deployments:
        for item in doc["paths"].values():
            for op in item.values():
                for param in op.get("parameters", ()):
                    if param.get("name") == "deployment":
                        param["schema"] = {"type": "string", "enum": deployments}
    return doc


def add_openapi_route(app: web.Application, table: RouteTable,
                      extra_paths: Mapping[str, Any] | None = None,
                      extra_schemas: Mapping[str, Any] | None = None) -> None:
    paths = {**gateway_paths(), **(extra_paths or {})}
    schemas = {**gateway_schemas(), **(extra_schemas or {})}

    async def openapi(_request: web.Request) -> web.Response:
        doc = build_document(paths, schemas, sorted(d.id for d in table.deployments()))
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    app.router.add_get(OPENAPI_PATH, openapi, name="openapi")
