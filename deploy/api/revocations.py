"""``/api/v1/token/revocation``: revoke tokens (by ``jti``, or a subject's before a time),
list the revocations, take one back. Effective on every gateway process within a second
(``mlgate up`` pushes each change to its workers at once) and kept across restarts."""

from __future__ import annotations

import time

from aiohttp import web

from deploy.api.common import answer, read_object
from deploy.control.revocations import RevocationStore, parse_revocation
from deploy.control.store import NotFound

REVOCATIONS_PATH = "/token/revocation"
REVOCATION_STORE = web.AppKey("mlgate_revocation_store", RevocationStore)


def _store(request: web.Request) -> RevocationStore:
    return request.app[REVOCATION_STORE]


async def list_revocations(request: web.Request) -> web.Response:
    return answer(200, [r.to_dict() for r in _store(request).list()])


async def revoke(request: web.Request) -> web.Response:
    new = parse_revocation(await read_object(request), time.time())
    entry, created = _store(request).add(new)
    return answer(201 if created else 200, entry.to_dict())


async def get_revocation(request: web.Request) -> web.Response:
    return answer(200, _store(request).get(_id(request)).to_dict())


async def delete_revocation(request: web.Request) -> web.Response:
    entry = _store(request).delete(_id(request))
    what = f"jti {entry.jti}" if entry.jti else f"subject {entry.sub}"
    return answer(200, {"message": f"token revocation {entry.id} ({what}) was deleted"})


def _id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isdigit():
        raise NotFound(f"token revocation {text}")
    return int(text)


def add_routes(app: web.Application, prefix: str, store: RevocationStore) -> None:
    app[REVOCATION_STORE] = store
    base = prefix + REVOCATIONS_PATH
    app.router.add_get(base, list_revocations)
    app.router.add_post(base, revoke)
    app.router.add_get(base + "/{id}", get_revocation)
    app.router.add_delete(base + "/{id}", delete_revocation)


def openapi_paths(prefix: str) -> dict[str, object]:
    """This API's part of the management API's OpenAPI document."""
    base = prefix + REVOCATIONS_PATH
    body = {"content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/TokenRevocationRequest"}}}, "required": True}
    entry = {"description": "The revocation", "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/TokenRevocation"}}}}
    error = {"description": "See the message", "content": {"application/json": {"schema": {
        "$ref": "#/components/schemas/HTTPResult"}}}}
    return {
        base: {
            "get": {"tags": ["Token"], "summary": "List revoked tokens",
                    "operationId": "listTokenRevocations",
                    "responses": {"200": {"description": "Every revocation in force",
                                          "content": {"application/json": {"schema": {
                                              "type": "array", "items": {
                                                  "$ref": "#/components/schemas/"
                                                          "TokenRevocation"}}}}}}},
            "post": {"tags": ["Token"], "summary": "Revoke a token (jti) or a subject's "
                     "tokens issued before a time (sub, before)",
                     "description": "In force on every gateway process within a second, "
                                    "kept across restarts. The same jti or sub again "
                                    "replaces its entry (200).",
                     "operationId": "revokeToken", "requestBody": body,
                     "responses": {"201": entry, "200": entry, "400": error, "401": error,
                                   "403": error}}},
        base + "/{id}": {
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "integer"}}],
            "get": {"tags": ["Token"], "summary": "Get a revocation",
                    "operationId": "getTokenRevocation",
                    "responses": {"200": entry, "404": error}},
            "delete": {"tags": ["Token"], "summary": "Take a revocation back",
                       "operationId": "deleteTokenRevocation",
                       "responses": {"200": error, "404": error}}},
    }


def openapi_schemas() -> dict[str, object]:
    when = {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
            "description": "RFC 3339, or epoch seconds"}
    return {
        "TokenRevocationRequest": {"type": "object", "additionalProperties": False,
                                   "properties": {
            "jti": {"type": "string", "description": "one token's jti claim"},
            "sub": {"type": "string", "description": "a subject: its tokens issued before "
                                                     "`before`"},
            "before": {**when, "description": "with sub; default now"},
            "expiresAt": {**when, "description": "when the entry may be forgotten"},
            "reason": {"type": "string"}}},
        "TokenRevocation": {"type": "object", "properties": {
            "id": {"type": "integer"}, "jti": {"type": "string", "nullable": True},
            "sub": {"type": "string", "nullable": True},
            "before": {"type": "string", "format": "date-time", "nullable": True},
            "expiresAt": {"type": "string", "format": "date-time", "nullable": True},
            "reason": {"type": "string"}, "createdAt": {"type": "string",
                                                          "format": "date-time"}}},
    }
