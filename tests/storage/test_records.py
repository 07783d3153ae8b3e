from datetime import UTC, datetime, timedelta, timezone

from storage import (
    Exchange,
    feedback_record,
    format_time,
    request_response_record,
    response_body_record,
)

WHEN = datetime(2019, 12, 17, 8, 46, 40, tzinfo=UTC)


def exchange(**kw):
    base = dict(
        request_id="rid-1", model_name="test-e2e-wine", model_version="1.0", method="POST",
        uri="/model/test-e2e-wine/api/model/invoke", upstream_path="/api/model/invoke",
        host="gw.example", scheme="http",
        request_headers=[("Content-Type", "application/json"), ("Authorization", "Bearer x"),
                         ("Cookie", "a=b"), ("X-Api-Key", "k"), ("Accept", "a"),
                         ("Accept", "b")],
        request_body=b'{"columns": ["a"], "data": [[1]]}', status=200,
        response_headers=[("Content-Type", "application/json"), ("Set-Cookie", "s=1"),
                          ("request-id", "rid-1")],
        response_body=b'{"prediction": [6.0], "columns": ["quality"]}', when=WHEN)
    base.update(kw)
    return Exchange(**base)


def test_time_format_is_utc_with_offset():
    assert format_time(WHEN) == "2019-12-17 08:46:40 +0000"
    plus_two = WHEN.astimezone(timezone(timedelta(hours=2)))
    assert format_time(plus_two) == "2019-12-17 08:46:40 +0000"


def test_request_response_record_has_seed_fields_and_no_secrets():
    rec = request_response_record(exchange())
    assert set(rec) == {
        "request_id", "request_content", "request_uri", "request_http_method",
        "request_http_headers", "request_host", "response_status", "response_http_headers",
        "model_name", "model_version", "time"}
    assert rec["response_status"] == "200"
    assert rec["request_content"] == '{"columns": ["a"], "data": [[1]]}'
    headers = rec["request_http_headers"]
    assert headers[":method"] == "POST" and headers[":path"] == "/api/model/invoke"
    assert headers["accept"] == "a,b"
    assert not {"authorization", "cookie", "x-api-key"} & set(headers)
    assert rec["response_http_headers"][":status"] == "200"
    assert "set-cookie" not in rec["response_http_headers"]
    assert rec["time"] == "2019-12-17 08:46:40 +0000"


def test_configured_headers_are_redacted():
    rec = request_response_record(exchange(), redacted=frozenset({"accept"}))
    assert "accept" not in rec["request_http_headers"]


def test_undecodable_bodies_never_raise():
    rec = response_body_record(exchange(response_body=b"\xff\xfe ok"))
    assert rec["response_content"].endswith(" ok")


def test_extra_fields_are_merged():
    rec = request_response_record(exchange(extra={"route": "r1"}))
    assert rec["route"] == "r1"


def test_feedback_record():
    assert feedback_record("r", "wine", "1.0", {"truthful": 1}, WHEN) == {
        "request_id": "r", "model_name": "wine", "model_version": "1.0",
        "payload": {"json": {"truthful": 1}}, "time": "2019-12-17 08:46:40 +0000"}
