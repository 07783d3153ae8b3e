"""The feedback endpoints: the seed's form and the ODAHU SDK form.

Both store one ``feedback`` record beside the logged prediction (same model
name, version and request id) and answer only once the record is durable.
Model name and version become storage path segments, so they are checked
against the safe set before anything is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from aiohttp import web

from storage import FEEDBACK, StorageError, feedback_record, is_safe_segment

SEED_PATH = "/feedback/model"
SDK_PATH = "/api/v1/feedback"
RETRY_AFTER_SECONDS = 2


class DurableWriter(Protocol):
    async def write_durable(self, kind: str, record: dict[str, Any], when: datetime) -> None: ...


class FeedbackError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def seed_error_body(_status: int, message: str, _kind: str) -> dict[str, Any]:
    return {"error": True, "registered": False, "message": message}


def sdk_error_body(_status: int, message: str, _kind: str) -> dict[str, Any]:
    return {"message": message}


def parse_feedback(headers: Any, body: bytes, name_header: str,
                   version_header: str) -> tuple[str, str, str, Any]:
    """(request id, model name, model version, JSON payload) or ``FeedbackError`` 400."""
    request_id = headers.get("Request-ID") or headers.get("X-Request-ID")
    model_name = headers.get(name_header)
    model_version = headers.get(version_header)
    missing = [h for h, v in (("Request-ID", request_id), (name_header, model_name),
                              (version_header, model_version)) if not v]
    if missing:
        raise FeedbackError(400, f"missing required header(s): {', '.join(missing)}")
    for header, value in ((name_header, model_name), (version_header, model_version)):
        if not is_safe_segment(value):
            raise FeedbackError(
                400, f"header {header} must be 1-128 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit, without '..'")
    if not body.strip():
        raise FeedbackError(400, "request body is empty: feedback must be a JSON document")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FeedbackError(400, f"request body is not valid JSON: {exc}") from None
    return request_id, model_name, model_version, payload


async def store(writer: DurableWriter, request_id: str, model_name: str, model_version: str,
                payload: Any) -> None:
    when = datetime.now(UTC)
    record = feedback_record(request_id, model_name, model_version, payload, when)
    try:
        await writer.write_durable(FEEDBACK, record, when)
    except StorageError as exc:
        raise FeedbackError(503, f"feedback could not be stored, retry later: {exc}",
                            {"Retry-After": str(RETRY_AFTER_SECONDS)}) from exc


Handler = Callable[[web.Request], Awaitable[web.Response]]
Respond = Callable[[int, Any, "dict[str, str] | None"], Any]
"""``respond(status, json_payload, headers) -> answer``: how a handler's answer is built
(default an aiohttp ``web.Response``; the edge passes the gateway's cheaper one)."""


def make_seed_handler(writer: DurableWriter, respond: Respond | None = None) -> Handler:
    _json = respond or _aiohttp_json

    async def seed_feedback(request: web.Request) -> web.Response:
        try:
            rid, name, version, payload = parse_feedback(
                request.headers, await request.read(), "x-model-name", "x-model-version")
            await store(writer, rid, name, version, payload)
        except FeedbackError as exc:
            return _json(exc.status, seed_error_body(exc.status, exc.message, ""), exc.headers)
        return _json(200, {"error": False, "registered": True, "message": {
            "RequestID": rid, "ModelVersion": version, "ModelName": name,
            "Payload": {"json": payload}}})

    return seed_feedback


def make_sdk_handler(writer: DurableWriter, respond: Respond | None = None) -> Handler:
    _json = respond or _aiohttp_json

    async def sdk_feedback(request: web.Request) -> web.Response:
        try:
            rid, name, version, payload = parse_feedback(
                request.headers, await request.read(), "model-name", "model-version")
            await store(writer, rid, name, version, payload)
        except FeedbackError as exc:
            return _json(exc.status, sdk_error_body(exc.status, exc.message, ""), exc.headers)
        return _json(200, {"requestID": rid, "modelVersion": version, "modelName": name,
                           "payload": {"json": payload}})

    return sdk_feedback


def _aiohttp_json(status: int, payload: Any,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload),
                        content_type="application/json", headers=headers)
