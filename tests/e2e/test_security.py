"""Security end to end: a real ``mlgate up`` trusting a real JWKS server on 127.0.0.1.

The attack-token table over HTTP, key rotation, roles, credentials kept out of the
records, and hostile input (oversized and slow bodies, deep JSON, escaping paths,
header abuse, slowloris) — after which the gateway must still answer.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import EXAMPLES, SEED_COLUMNS, SEED_ROW
from tests.gateway.auth_attacks import ATTACKS, AUDIENCE, ISSUER, Issuer

pytestmark = pytest.mark.e2e
SEED = {"columns": SEED_COLUMNS, "data": [SEED_ROW]}
CERTS = "/realms/mlgate/protocol/openid-connect/certs"


class JwksServer:
    """A JWKS endpoint like Keycloak's, whose document a test can rotate."""

    def __init__(self, doc: dict) -> None:
        self.doc = doc
        self.hits = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                body = json.dumps(server.doc).encode()
                self.send_response(200 if self.path == CERTS else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{CERTS}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture(scope="module")
def jwks(issuer):
    server = JwksServer(issuer.jwks())
    yield server
    server.close()


@pytest.fixture(scope="module")
def stack(mlgate_module, demo_models, jwks, tmp_path_factory, issuer):
    config = tmp_path_factory.mktemp("cfg") / "mlgate.yaml"
    config.write_text(f"""
auth:
  jwks_url: {jwks.url}
  issuer: {ISSUER}
  audience: {AUDIENCE}
  jwks_refresh_min_interval: 0
  invalid_token_burst: 1000  # this module sends bad tokens on purpose; test_credentials limits them
gateway:
  max_body_bytes: 1048576
  idle_timeout: 2
  body_timeout: 2
storage:
  flush_interval: 0.2
  redact_headers: [x-secret]
""")
    proc = mlgate_module(["-f", str(EXAMPLES / "wine-v1.yaml"), "--config", str(config)])
    assert proc.token == ""  # tokens come from the issuer, not from mlgate token
    proc.token = issuer.token()
    return proc


def call(stack, method: str, path: str, token: str | None = None, **kw) -> httpx.Response:
    headers = kw.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        return client.request(method, path, headers=headers, **kw)


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_tokens(stack, issuer, attack):
    token = attack.build(issuer)
    resp = call(stack, "GET", "/model/wine-v1/api/model/info", token)
    if attack.reason is None:
        assert resp.status_code == 200, resp.text
        return
    assert resp.status_code == 401, resp.text
    assert resp.json()["reason"] == attack.reason
    assert resp.headers["WWW-Authenticate"].startswith(
        'Bearer realm="mlgate", error="invalid_token", error_description=')
    assert token not in resp.text and token not in resp.headers["WWW-Authenticate"]


def test_a_rotated_key_is_fetched_when_a_token_names_it(stack, jwks, issuer):
    rotated = Issuer(rsa_kid="rsa-2", ec_kid="ec-2")
    token = rotated.token()
    assert call(stack, "GET", "/model/wine-v1/api/model/info", token).json()["reason"] == \
        "unknown_kid"
    before = jwks.hits
    jwks.doc = {"keys": issuer.jwks()["keys"] + rotated.jwks()["keys"]}
    try:
        assert call(stack, "GET", "/model/wine-v1/api/model/info", token).status_code == 200
        assert jwks.hits == before + 1
        assert call(stack, "GET", "/model/wine-v1/api/model/info", issuer.token()).status_code \
            == 200
    finally:
        jwks.doc = issuer.jwks()


@pytest.mark.parametrize(("roles", "method", "path", "status"), [
    (("viewer",), "GET", "/model/wine-v1/api/model/info", 200),
    (("viewer",), "POST", "/model/wine-v1/api/model/invoke", 403),
    (("viewer",), "POST", "/feedback/model/", 403),
    (("data_scientist",), "POST", "/model/wine-v1/api/model/invoke", 200),
    (("odahu_data_scientist",), "POST", "/model/wine-v1/api/model/invoke", 200),
    (("role-wine-v1",), "POST", "/model/wine-v1/api/model/invoke", 200),
    (("role-wine-v2",), "POST", "/model/wine-v1/api/model/invoke", 403),
    ((), "GET", "/model/wine-v1/api/model/info", 403),
    (("viewer",), "GET", "/openapi.json", 200),
])
def test_roles(stack, issuer, roles, method, path, status):
    token = issuer.token(issuer.claims(roles))
    resp = call(stack, method, path, token, json=SEED if method == "POST" else None, headers={
        "x-model-name": "wine", "x-model-version": "1.0", "Request-ID": "r-1"})
    assert resp.status_code == status, resp.text
    if status == 403:
        assert "may not" in resp.text


def stored_text(data_dir: Path) -> str:
    return "".join(p.read_text() for p in (data_dir / "storage").rglob("*.json"))


def test_records_never_hold_credentials(stack):
    rid = f"secret-check-{uuid.uuid4().hex[:8]}"
    resp = call(stack, "POST", "/model/wine-v1/api/model/invoke", stack.token, json=SEED,
                headers={"Request-ID": rid, "Cookie": "session=s3cr3t-cookie",
                         "X-Secret": "s3cr3t-header", "X-Api-Key": "s3cr3t-key"})
    assert resp.status_code == 200
    deadline = time.monotonic() + 30
    while rid not in stored_text(stack.data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    text = stored_text(stack.data_dir)
    assert rid in text
    for secret in (stack.token, "s3cr3t-cookie", "s3cr3t-header", "s3cr3t-key"):
        assert secret not in text
    assert '"authorization"' not in text.lower() and '"x-secret"' not in text.lower()


# --- hostile input ---------------------------------------------------------------


def raw_exchange(stack, head: bytes, body: bytes = b"", timeout: float = 30) -> bytes:
    """Send bytes as they are (no client normalises them); the answer's head and body."""
    host, port = stack.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head + body)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            data = b"".join(chunks)
            if b"\r\n\r\n" in data:
                head_part, _, rest = data.partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in head_part.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")]
                if length and len(rest) >= length[0]:
                    break
        return b"".join(chunks)


def request_head(stack, method: str, target: str, extra: str = "", token: bool = True) -> bytes:
    auth = f"Authorization: Bearer {stack.token}\r\n" if token else ""
    return (f"{method} {target} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n{auth}{extra}"
            "\r\n").encode()


@pytest.mark.parametrize("target", [
    "/model/wine-v1/../wine-v2/api/model/info",
    "/model/wine-v1/%2e%2e/wine-v2/api/model/info",
    "/model/wine-v1/%2E%2e/%2e%2E/model/wine-v2/api/model/info",
    "/model/wine-v1%2f..%2fwine-v2/api/model/info",
    "/model/wine-v1/api%2fmodel%2finfo",
    "/model/wine-v1/%252e%252e/wine-v2/api/model/info",
    "/model/wine-v1/..%5cwine-v2/api/model/info",
    "//model/wine-v1/api/model/info",
])
def test_paths_that_try_to_escape_are_400(stack, target):
    answer = raw_exchange(stack, request_head(stack, "GET", target))
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b'"reason":"bad_request"' in answer


@pytest.mark.parametrize("value", [
    "../../etc/passwd", "abc%0d%0aSet-Cookie: x=1", "a" * 129, "id with spaces", "ïd", "-x",
])
def test_unsafe_request_ids_are_400(stack, value):
    answer = raw_exchange(stack, request_head(
        stack, "GET", "/model/wine-v1/api/model/info", f"Request-ID: {value}\r\n".encode(
            "latin-1", errors="replace").decode("latin-1")))
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b"Request-ID must be" in answer
    assert b"Set-Cookie" not in answer.partition(b"\r\n\r\n")[0]


def test_a_crlf_in_a_request_id_cannot_add_a_response_header(stack):
    answer = raw_exchange(stack, request_head(
        stack, "GET", "/model/wine-v1/api/model/info", "Request-ID: ok-1\r\nX-Injected: 1\r\n"))
    head = answer.partition(b"\r\n\r\n")[0].lower()
    assert answer.startswith(b"HTTP/1.1 200") and b"request-id: ok-1" in head
    assert b"x-injected" not in head


def test_an_oversized_body_is_413_json(stack):
    declared = raw_exchange(stack, request_head(
        stack, "POST", "/model/wine-v1/api/model/invoke",
        "Content-Type: application/json\r\nContent-Length: 2000000\r\n"), b"{")
    assert declared.startswith(b"HTTP/1.1 413") and b"payload_too_large" in declared
    sent = call(stack, "POST", "/feedback/model/", stack.token, content=b"[" + b"1," * 600_000
                + b"1]", headers={"x-model-name": "wine", "x-model-version": "1.0",
                                  "Request-ID": "big-1"})
    assert sent.status_code == 413 and sent.json()["registered"] is False


def test_deep_json_is_a_clear_400(stack):
    deep = b'{"a":' * 5000 + b"1" + b"}" * 5000
    fb = call(stack, "POST", "/feedback/model/", stack.token, content=deep, headers={
        "x-model-name": "wine", "x-model-version": "1.0", "Request-ID": "deep-1"})
    assert fb.status_code == 400 and "deeper than 64" in fb.json()["message"]
    sdk = call(stack, "POST", "/api/v1/feedback", stack.token, content=b"[" * 70 + b"]" * 70,
               headers={"model-name": "wine", "model-version": "1.0", "request-id": "deep-2"})
    assert sdk.status_code == 400 and "deeper than 64" in sdk.json()["message"]
    invoke = call(stack, "POST", "/model/wine-v1/api/model/invoke", stack.token, content=deep,
                  headers={"Content-Type": "application/json"})
    assert invoke.status_code == 400, invoke.text


def test_too_many_or_too_large_headers_are_refused(stack):
    """aiohttp's parser refuses these before any handler runs (a plain-text 400)."""
    many = "".join(f"X-H{i}: v\r\n" for i in range(150))
    assert b" 400 " in raw_exchange(stack, request_head(stack, "GET", "/health", many))[:20]
    huge = f"X-Big: {'x' * 20000}\r\n"
    assert b" 400 " in raw_exchange(stack, request_head(stack, "GET", "/health", huge))[:20]
    signature = "s" * 300
    too_long = f"Authorization: Bearer {'a' * 20000}.{signature}\r\n"
    answer = raw_exchange(stack, request_head(stack, "GET", "/model/wine-v1/api/model/info",
                                              too_long, token=False))
    assert b" 400 " in answer[:20] and signature.encode() not in answer
    time.sleep(0.2)
    assert "Bearer aaaa" not in stack.stderr()  # the refusal is logged without the credential
    long_token = "Authorization: Bearer " + "a" * 15000 + "\r\n"
    answer = raw_exchange(stack, request_head(stack, "GET", "/model/wine-v1/api/model/info",
                                              long_token, token=False))
    assert answer.startswith(b"HTTP/1.1 401") and b"token_too_large" in answer


def test_a_body_sent_too_slowly_is_408(stack):
    answer = raw_exchange(stack, request_head(
        stack, "POST", "/model/wine-v1/api/model/invoke",
        "Content-Type: application/json\r\nContent-Length: 1000\r\n"), b'{"columns": [')
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer


async def _slowloris(host: str, port: int, deadline: float) -> bool:
    """Trickle header lines forever; True when the server closed the connection."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: gw\r\n")
    try:
        while time.monotonic() < deadline:
            writer.write(b"X-Slow: 1\r\n")
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1), 0.3) == b"":
                    return True
            except TimeoutError:
                continue
    except (ConnectionError, OSError):
        return True
    finally:
        writer.close()
    return False


def test_slowloris_connections_are_closed_and_others_are_served(stack):
    host, port = stack.url.removeprefix("http://").split(":")

    async def scenario() -> tuple[list[bool], int]:
        deadline = time.monotonic() + 30
        slow = [asyncio.create_task(_slowloris(host, int(port), deadline)) for _ in range(50)]
        await asyncio.sleep(0.5)
        async with httpx.AsyncClient(base_url=stack.url, headers=stack.headers) as client:
            status = (await client.get("/model/wine-v1/api/model/info")).status_code
        return await asyncio.gather(*slow), status

    closed, status_meanwhile = asyncio.run(scenario())
    assert status_meanwhile == 200
    assert all(closed), f"{closed.count(False)} slow connections were kept open"


def test_after_all_that_the_gateway_still_serves(stack):
    assert stack.proc.poll() is None
    assert call(stack, "GET", "/health").status_code == 200
    resp = call(stack, "POST", "/model/wine-v1/api/model/invoke", stack.token, json=SEED)
    assert resp.status_code == 200 and len(resp.json()["prediction"]) == 1
    assert "unhandled error" not in stack.stderr()  # no request reached a 500
