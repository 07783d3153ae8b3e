"""Credentials under abuse, against ``mlgate up --workers 2`` trusting a real JWKS server that
runs in this test (an OIDC issuer's key set on 127.0.0.1):

* a token revoked with ``mlgate token revoke`` (CLI -> SDK -> API) is refused by every
  gateway process within a second, and still after a restart; so are a subject's tokens
  issued before a time, while its later ones work;
* the issuer rotates its signing key: the new key's tokens work at once (no restart), the
  old key's tokens keep working until they expire;
* an address that keeps sending invalid tokens gets 429.

Every call opens a new connection, so the kernel (``SO_REUSEPORT``) spreads them over both
processes; with 32 calls the chance that one process got none is below one in four billion.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

import mlgate
from tests.conftest import EXAMPLES, ROOT, SEED_COLUMNS, SEED_ROW, wait_until
from tests.gateway.auth_attacks import AUDIENCE, ISSUER, Issuer

pytestmark = pytest.mark.e2e
SEED = {"columns": SEED_COLUMNS, "data": [SEED_ROW]}
INVOKE = "/model/wine-v1/api/model/invoke"
CALLS = 32


class Jwks:
    """The issuer's key set, served at ``url``; ``publish`` replaces it (a rotation)."""

    def __init__(self) -> None:
        self.doc: dict = {"keys": []}
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = json.dumps(jwks.doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/certs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def publish(self, *issuers: Issuer) -> None:
        self.doc = {"keys": [k for i in issuers for k in i.jwks()["keys"][:1]]}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def jwks():
    server = Jwks()
    yield server
    server.close()


OLD, NEW = Issuer(rsa_kid="2025-old"), Issuer(rsa_kid="2026-new")
ADMIN = OLD.token(OLD.claims(roles=("admin",), sub="ops"))


@pytest.fixture(scope="module")
def config(tmp_path_factory, jwks):
    path = tmp_path_factory.mktemp("config") / "mlgate.yaml"
    path.write_text(
        f"auth:\n  jwks_url: {jwks.url}\n  issuer: {ISSUER}\n  audience: [{AUDIENCE}]\n"
        "  jwks_refresh_min_interval: 0\n  jwks_retired_key_grace: 3600\n"
        "  invalid_token_rate: 1/m\n  invalid_token_burst: 5\n")
    return path


@pytest.fixture(scope="module")
def stack(mlgate_module, demo_models, config, jwks, tmp_path_factory):
    jwks.publish(OLD)
    data = tmp_path_factory.mktemp("stack") / "data"
    proc = mlgate_module(["--workers", "2", "--config", str(config),
                          "-f", str(EXAMPLES / "wine-v1.yaml")], data_dir=data)
    proc.token = ADMIN
    proc.wait_state("wine-v1", "Ready")
    return proc


def fresh(url: str, token: str, n: int = CALLS) -> list[int]:
    """``n`` invocations, each on a connection of its own (both processes answer some)."""
    codes = []
    for _ in range(n):
        with httpx.Client(timeout=30) as client:
            codes.append(client.post(f"{url}{INVOKE}", json=SEED,
                                     headers={"Authorization": f"Bearer {token}"}).status_code)
    return codes


def cli(stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.cli", "token", *args,
                           "--url", stack.url, "--token", ADMIN], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def test_a_revoked_token_is_refused_by_every_process_within_a_second_and_after_a_restart(
        stack, mlgate_module):
    leaked = OLD.token(OLD.claims(roles=("admin",), sub="alice", jti="leaked-1"))
    other = OLD.token(OLD.claims(roles=("admin",), sub="alice", jti="fine-1"))
    assert fresh(stack.url, leaked) == [200] * CALLS

    done = cli(stack, "revoke", "--jwt", leaked, "--reason", "pasted in a chat")
    assert done.returncode == 0, done.stderr
    assert "leaked-1" in done.stdout and "pasted in a chat" in done.stdout
    revoked_at = time.monotonic()
    # Pushed to the worker as the API answers: in force within milliseconds. The issue's
    # bound is 1 s; the margin here is 3 s for a loaded machine.
    wait_until(lambda: fresh(stack.url, leaked, 8) == [401] * 8, 3, 0.05,
               what="the revocation on every process")
    assert time.monotonic() - revoked_at < 3
    codes = fresh(stack.url, leaked)
    assert codes == [401] * CALLS
    with httpx.Client(timeout=30) as client:
        body = client.post(f"{stack.url}{INVOKE}", json=SEED,
                           headers={"Authorization": f"Bearer {leaked}"}).json()
    assert body == {"message": "token has been revoked", "reason": "token_revoked"}
    assert fresh(stack.url, other, 8) == [200] * 8

    listed = cli(stack, "revocations", "-o", "json")
    assert json.loads(listed.stdout)[0]["jti"] == "leaked-1"

    assert stack.stop() == 0  # a restart: the list is in the state database
    stack.start()
    stack.token = ADMIN
    stack.wait_state("wine-v1", "Ready")
    assert fresh(stack.url, leaked) == [401] * CALLS
    assert fresh(stack.url, other, 8) == [200] * 8


def test_a_subjects_earlier_tokens_are_revoked_and_its_later_ones_work(stack):
    now = int(time.time())
    before = OLD.token(OLD.claims(roles=("admin",), sub="mallory", iat=now - 60))
    with mlgate.Client(stack.url, ADMIN, progress=False) as client:
        entry = client.tokens.revoke(sub="mallory", reason="left the team")
        assert entry.sub == "mallory" and entry.before
        wait_until(lambda: fresh(stack.url, before, 8) == [401] * 8, 3, 0.05,
                   what="the subject's revocation on every process")
        time.sleep(1.1)  # iat has a resolution of one second
        after = OLD.token(OLD.claims(roles=("admin",), sub="mallory", iat=int(time.time())))
        assert fresh(stack.url, after, 8) == [200] * 8
        assert "mallory" in str(client.tokens.revocations())
        client.tokens.delete_revocation(entry.id)
        wait_until(lambda: fresh(stack.url, before, 8) == [200] * 8, 3, 0.05,
                   what="the revocation taken back everywhere")


def test_the_issuer_rotates_its_key_without_a_restart(stack, jwks):
    old_token = OLD.token(OLD.claims(roles=("admin",), sub="before-rotation"))
    assert fresh(stack.url, old_token, 8) == [200] * 8
    jwks.publish(NEW)  # the issuer now publishes only its new key
    new_token = NEW.token(NEW.claims(roles=("admin",), sub="after-rotation"))
    assert fresh(stack.url, new_token) == [200] * CALLS  # fetched for its unknown kid
    # the old key is no longer published, yet its tokens work until they expire
    assert fresh(stack.url, old_token) == [200] * CALLS
    unseen = OLD.token(OLD.claims(roles=("admin",), sub="signed-before-rotation"))
    assert fresh(stack.url, unseen, 8) == [200] * 8
    jwks.publish(OLD, NEW)  # leave both for the other tests


def test_an_address_that_keeps_sending_invalid_tokens_is_rate_limited(stack):
    regular = NEW.token(NEW.claims(roles=("admin",), sub="regular"))
    assert fresh(stack.url, regular) == [200] * CALLS  # verified (and kept) by both processes
    forged = OLD.token(OLD.claims(roles=("admin",)))[:-6] + "AAAAAA"
    codes = fresh(stack.url, forged, 12)
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}, codes
    with httpx.Client(timeout=30) as client:
        limited = client.post(f"{stack.url}{INVOKE}", json=SEED,
                              headers={"Authorization": f"Bearer {forged}x"})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    # a token verified before keeps working from the same address; a new one waits
    assert fresh(stack.url, regular) == [200] * CALLS
    unseen = NEW.token(NEW.claims(roles=("admin",), sub="newcomer"))
    assert set(fresh(stack.url, unseen, 4)) == {429}
    text = httpx.get(f"{stack.url}/metrics", timeout=30).text
    assert 'mlgate_requests_rate_limited_total{deployment="wine-v1",reason="invalid_tokens"}' \
        in text
