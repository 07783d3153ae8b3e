"""Records as the writer stores them, for the live join's tests."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from storage import feedback_record

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
T0_EPOCH = int(T0.timestamp())


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0_EPOCH + seconds, UTC)


def prediction(rid: str, value, seconds: float = 0, dep: str = "wine-v1", model: str = "wine",
               version: str = "1.0", status: int = 200, route: str | None = None,
               mirror: bool = False, upstream_ms: float | None = 2.0) -> dict:
    body = value if isinstance(value, dict) else {"prediction": value if isinstance(
        value, list) else [value], "columns": ["quality"]}
    record = {"request_id": rid, "model_name": model, "model_version": version,
              "response_content": orjson.dumps(body).decode(),
              "time": at(seconds).strftime("%Y-%m-%d %H:%M:%S +0000"),
              "response_status": str(status), "deployment_id": dep}
    if route is not None:
        record["route_id"] = route
    if mirror:
        record["mirror"] = True
    if upstream_ms is not None:
        record["upstream_ms"] = upstream_ms
    return record


def feedback(rid: str, payload, seconds: float = 0, model: str = "wine",
             version: str = "1.0") -> dict:
    return feedback_record(rid, model, version, payload, at(seconds))
