"""The access log: queued on the request path, written by a thread; text and JSON forms."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import GatewayConfig, RouteTable, create_app
from gateway.access_log import (
    ACCESS_LOGGER,
    TEXT_FORMAT,
    AccessLog,
    JsonFormatter,
    access_fields,
    access_message,
)
from gateway.app import OBSERVER

ENTRY = (1700000000.25, "POST", "/model/wine/api/model/invoke", 200, 0.0031, 0.0024,
         "req-1", "wine", "default", "127.0.0.1", "alice")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logger():
    log = logging.getLogger(f"{ACCESS_LOGGER}.test")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = Collect()
    log.addHandler(handler)
    yield log, handler
    log.removeHandler(handler)


def test_fields_and_text_form_of_one_line():
    fields = access_fields(ENTRY)
    assert fields == {"request_id": "req-1", "method": "POST",
                      "path": "/model/wine/api/model/invoke", "status": 200,
                      "duration_ms": 3.1, "upstream_ms": 2.4, "deployment": "wine",
                      "route": "default", "remote": "127.0.0.1", "subject": "alice"}
    assert access_message(fields) == (
        "POST /model/wine/api/model/invoke 200 3.1ms upstream=2.4ms deployment=wine "
        "route=default request_id=req-1 remote=127.0.0.1 subject=alice")
    bare = access_fields((1.0, "GET", "/health", 200, 0.0001, None, "r", "", "", "", ""))
    assert set(bare) == {"request_id", "method", "path", "status", "duration_ms"}


def test_lines_are_written_by_the_thread_in_order_with_the_request_time(logger):
    log, handler = logger
    access = AccessLog(log)
    access.start()
    assert access.enabled
    for i in range(50):
        access.record((*ENTRY[:6], f"req-{i}", *ENTRY[7:]))
    access.close()
    assert [r.access["request_id"] for r in handler.records] == [f"req-{i}" for i in range(50)]
    first = handler.records[0]
    assert first.levelno == logging.INFO and first.created == ENTRY[0]
    assert first.getMessage().startswith("POST /model/wine/api/model/invoke 200 3.1ms")


def test_nothing_is_queued_or_written_below_info(logger):
    log, handler = logger
    log.setLevel(logging.WARNING)
    access = AccessLog(log)
    access.start()
    assert not access.enabled
    access.close()
    assert handler.records == []


def test_the_queue_is_bounded(logger):
    log, _ = logger
    access = AccessLog(log, max_queued=2)  # not started: nothing drains the queue
    for _ in range(5):
        access.record(ENTRY)
    assert access.dropped == 3


def test_the_json_form_is_one_object_per_line_with_the_access_fields():
    formatter = JsonFormatter()
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, __file__, 1, "POST /x 200", None, None)
    record.created = ENTRY[0]
    record.access = access_fields(ENTRY)
    doc = json.loads(formatter.format(record))
    assert doc["time"] == "2023-11-14T22:13:20.250Z"
    assert doc["level"] == "info" and doc["logger"] == ACCESS_LOGGER
    assert doc["request_id"] == "req-1" and doc["upstream_ms"] == 2.4
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("mlgate", logging.ERROR, __file__, 1, "failed %s", ("x",),
                                   sys.exc_info())
    doc = json.loads(formatter.format(failed))
    assert doc["message"] == "failed x" and "ValueError: boom" in doc["error"]
    assert "\n" not in formatter.format(failed)


async def test_the_gateway_logs_each_request_once(caplog):
    async def invoke(_request):
        return web.json_response({"prediction": [1]})

    upstream_app = web.Application()
    upstream_app.router.add_post("/api/model/invoke", invoke)
    upstream = TestServer(upstream_app, host="127.0.0.1")
    await upstream.start_server()
    table = RouteTable()
    table.upsert("wine", "wine", "1.0")
    table.set_replicas("wine", [("127.0.0.1", upstream.port)])
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    client = TestClient(TestServer(create_app(GatewayConfig(), table, lambda _e: None),
                                   host="127.0.0.1"))
    await client.start_server()
    await client.post("/model/wine/api/model/invoke", json={}, headers={"Request-ID": "one"})
    await client.get("/nowhere", headers={"Request-ID": "two"})
    await client.close()  # the app's cleanup writes what is queued
    await upstream.close()
    lines = [r.access for r in caplog.records if r.name == ACCESS_LOGGER]
    assert [(x["request_id"], x["status"], x.get("deployment")) for x in lines] == [
        ("one", 200, "wine"), ("two", 404, None)]


async def test_the_access_log_can_be_off():
    table = RouteTable()
    app = create_app(GatewayConfig(access_log=False), table, lambda _e: None)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    assert (await client.get("/health")).status == 200
    await client.close()
    assert app[OBSERVER].access is None


@pytest.mark.parametrize("formatter", [logging.Formatter(TEXT_FORMAT), JsonFormatter()],
                         ids=["text", "json"])
def test_batched_lines_are_those_the_stderr_handler_would_write(formatter):
    """The thread's own rendering (mlgate's one stderr handler) and the ordinary
    ``logging`` path (any other set-up) write the same bytes."""
    written = []
    for plain in (True, False):
        parent = logging.getLogger(f"batch-{plain}-{type(formatter).__name__}")
        parent.propagate = False
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        if not plain:
            handler.addFilter(lambda _record: True)  # any filter: the ordinary path
        parent.addHandler(handler)
        log = logging.getLogger(f"{parent.name}.access")
        log.setLevel(logging.INFO)
        access = AccessLog(log)
        access.start()
        for i in range(3):
            access.record((*ENTRY[:6], f"req-{i}", *ENTRY[7:]))
        access.record((1.0, "GET", "/health", 200, 0.0001, None, "r", "", "", "", ""))
        access.close()
        parent.removeHandler(handler)
        written.append(stream.getvalue().replace(parent.name, "NAME"))
    assert written[0] == written[1]
    assert written[0].count("\n") == 4 and "req-2" in written[0]
