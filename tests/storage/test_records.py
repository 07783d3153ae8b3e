import base64
import gzip
import json
import struct
import zlib
from datetime import UTC, datetime, timedelta, timezone

from storage import (
    Exchange,
    feedback_record,
    format_time,
    request_response_record,
    response_body_record,
)
from storage.records import content_decode, stored_body

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


def test_bytes_that_are_not_text_are_stored_base64_never_mangled():
    raw = b"\xff\xfe ok\x00"
    rec = response_body_record(exchange(response_body=raw))
    assert rec["response_content_encoding"] == "base64"
    assert base64.b64decode(rec["response_content"]) == raw
    assert json.loads(json.dumps(rec)) == rec


def test_text_bodies_keep_the_seed_shape():
    rec = response_body_record(exchange())
    assert set(rec) == {"request_id", "model_name", "model_version", "response_content", "time",
                        "response_status"}
    assert rec["response_status"] == "200"


def test_records_name_the_deployment_and_route_that_served():
    ex = exchange(deployment_id="wine-v2", route_id="wine")
    for rec in (request_response_record(ex), response_body_record(ex)):
        assert rec["deployment_id"] == "wine-v2" and rec["route_id"] == "wine"
    direct = exchange(deployment_id="wine-v1")
    for rec in (request_response_record(direct), response_body_record(direct)):
        assert rec["deployment_id"] == "wine-v1" and "route_id" not in rec


def test_response_body_carries_the_upstream_time_and_marks_a_mirror_copy():
    rec = response_body_record(exchange(upstream_seconds=0.0123456))
    assert rec["upstream_ms"] == 12.346 and "mirror" not in rec
    copy = response_body_record(exchange(extra={"mirror": True, "route": "r"}))
    assert copy["mirror"] is True and "upstream_ms" not in copy
    assert "route" not in copy  # the route's extras stay on request_response


def v2_binary_body(header: dict, *tensors: bytes) -> tuple[bytes, int]:
    head = json.dumps(header).encode()
    return head + b"".join(tensors), len(head)


def test_binary_tensor_extension_keeps_the_json_header_and_base64s_the_tensors():
    floats = struct.pack("<3f", 1.5, float("nan"), -2.0)
    body, n = v2_binary_body({"inputs": [{"name": "input0", "shape": [1, 3], "datatype": "FP32",
                                          "parameters": {"binary_data_size": 12}}]}, floats)
    rec = request_response_record(exchange(
        request_body=body,
        request_headers=[("Content-Type", "application/octet-stream"),
                         ("Inference-Header-Content-Length", str(n))]))
    assert json.loads(rec["request_content"])["inputs"][0]["name"] == "input0"
    assert rec["request_binary_size"] == 12
    assert base64.b64decode(rec["request_binary"]) == floats
    assert "request_content_encoding" not in rec
    line = json.dumps(rec)
    assert "\n" not in line and json.loads(line) == rec


def test_binary_parts_beyond_the_limit_keep_only_their_size():
    body, n = v2_binary_body({"outputs": []}, b"\x00" * 100)
    out = stored_body("response", body, [("inference-header-content-length", str(n))],
                      max_binary=10)
    assert out == {"response_content": '{"outputs": []}', "response_binary_size": 100}
    out = stored_body("response", b"\xff" * 100, [], max_binary=10)
    assert out == {"response_content": "", "response_content_encoding": "omitted",
                   "response_content_size": 100}


def test_a_wrong_header_length_falls_back_to_the_whole_body():
    body = b'{"inputs": []}'
    for bad in ("999", "-1", "x"):
        out = stored_body("request", body, [("Inference-Header-Content-Length", bad)])
        assert out == {"request_content": body.decode()}


def test_gzip_and_deflate_bodies_are_stored_decoded():
    text = b'{"model_name":"wine","outputs":[{"name":"quality","data":[5.9]}]}'
    for encoding, packed in (("gzip", gzip.compress(text)), ("deflate", zlib.compress(text)),
                             ("deflate", zlib.compress(text)[2:-4])):
        rec = response_body_record(exchange(
            response_body=packed, response_headers=[("Content-Encoding", encoding)]))
        assert rec["response_content"] == text.decode()
        assert rec["response_content_decoded"] == encoding


def test_gzip_with_binary_tensors_is_decoded_then_split():
    tensor = struct.pack("<2d", 5.9, 6.1)
    body, n = v2_binary_body({"outputs": [{"name": "quality"}]}, tensor)
    out = stored_body("response", gzip.compress(body),
                      [("content-encoding", "gzip"), ("inference-header-content-length", str(n))])
    assert out["response_content_decoded"] == "gzip"
    assert json.loads(out["response_content"]) == {"outputs": [{"name": "quality"}]}
    assert base64.b64decode(out["response_binary"]) == tensor


def test_broken_or_oversized_compressed_bodies_are_kept_as_they_came():
    assert content_decode(b"not gzip", "gzip") == (b"not gzip", None)
    bomb = gzip.compress(b"\x00" * 10_000)
    assert content_decode(bomb, "gzip", limit=1000) == (bomb, None)
    truncated = gzip.compress(b"x" * 1000)[:-10]
    assert content_decode(truncated, "gzip") == (truncated, None)
    assert content_decode(b"abc", "br") == (b"abc", None)
    out = stored_body("request", truncated, [("Content-Encoding", "gzip")])
    assert out["request_content_encoding"] == "base64"
    assert base64.b64decode(out["request_content"]) == truncated
    assert "request_content_decoded" not in out


def test_extra_fields_are_merged():
    rec = request_response_record(exchange(extra={"route": "r1"}))
    assert rec["route"] == "r1"


def test_feedback_record():
    assert feedback_record("r", "wine", "1.0", {"truthful": 1}, WHEN) == {
        "request_id": "r", "model_name": "wine", "model_version": "1.0",
        "payload": {"json": {"truthful": 1}}, "time": "2019-12-17 08:46:40 +0000",
        "time_us": 1576572400000000}
