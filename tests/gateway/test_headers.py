import pytest

from gateway.errors import NotFound
from gateway.headers import UPSTREAM_TIME_HEADER, response_headers, upstream_headers, upstream_path


@pytest.mark.parametrize(("raw", "expected"), [
    ("/model/wine/api/model/invoke", "/api/model/invoke"),
    ("/model/wine/api/model/invoke?x=1&y=%20", "/api/model/invoke?x=1&y=%20"),
    ("/model/wine", "/"),
    ("/model/wine?x=1", "/?x=1"),
    ("/model/wine/", "/"),
    ("/model/wine/v2/models/a%2Fb/infer", "/v2/models/a%2Fb/infer"),
])
def test_upstream_path(raw, expected):
    assert upstream_path(raw, "/model/wine") == expected


@pytest.mark.parametrize("raw", ["/model/wine2/x", "/model/win", "/other/wine"])
def test_upstream_path_outside_mount(raw):
    with pytest.raises(NotFound):
        upstream_path(raw, "/model/wine")


def test_upstream_headers_drop_hop_by_hop_and_credentials():
    incoming = {"Host": "gw", "Connection": "keep-alive", "Authorization": "Bearer t",
                "Cookie": "c=1", "Content-Length": "5", "Content-Type": "application/json",
                "Transfer-Encoding": "chunked", "X-Forwarded-For": "10.0.0.1"}
    out = upstream_headers(incoming, "rid", "127.0.0.1", "http")
    assert out == {"content-type": "application/json", "request-id": "rid",
                   "x-forwarded-for": "10.0.0.1, 127.0.0.1", "x-forwarded-proto": "http"}


def test_response_headers_are_set_by_the_gateway():
    upstream = {"Content-Type": "application/json", "Model-Name": "spoof",
                "Connection": "close", "Server": "x", "Content-Length": "9"}
    out = response_headers(upstream, "rid", "wine", "1.0", 7)
    assert dict(out) == {"Content-Type": "application/json", "model-name": "wine",
                         "model-version": "1.0", "request-id": "rid", UPSTREAM_TIME_HEADER: "7",
                         "server": "mlgate"}


def test_content_encoding_the_server_decoded_is_not_forwarded():
    from gateway.headers import decoded_request_encoding

    out = upstream_headers({"Content-Encoding": "GZIP", "Content-Type": "a/b"}, "r", None, "http")
    assert "content-encoding" not in out and out["content-type"] == "a/b"
    assert decoded_request_encoding({"content-encoding": "br"}) == "br"
    out = upstream_headers({"Content-Encoding": "x-custom"}, "r", None, "http")
    assert out["content-encoding"] == "x-custom"
    assert decoded_request_encoding({"content-encoding": "x-custom"}) is None
