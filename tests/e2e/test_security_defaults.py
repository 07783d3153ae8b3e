"""Secure by default: ``mlgate up`` with no auth config, ``mlgate token``, and turning auth off."""

from __future__ import annotations

import stat
import subprocess
import sys

import httpx
import pytest

from tests.conftest import EXAMPLES, ROOT, SEED_COLUMNS, SEED_ROW

pytestmark = pytest.mark.e2e
SEED = {"columns": SEED_COLUMNS, "data": [SEED_ROW]}

# Every path family of DESIGN.md, registered today or not: none may answer without a token.
PROTECTED = [
    ("POST", "/model/wine-v1/api/model/invoke"),
    ("GET", "/model/wine-v1/api/model/info"),
    ("POST", "/model/wine-v1/invocations"),
    ("GET", "/model/wine-v1/v2/health/ready"),
    ("GET", "/model/unknown/api/model/info"),
    ("POST", "/custom/ab/api/model/invoke"),
    ("POST", "/feedback/model/"),
    ("POST", "/api/v1/feedback"),
    ("GET", "/api/v1/model/deployment"),
    ("POST", "/api/v1/model/deployment"),
    ("PUT", "/api/v1/model/deployment"),
    ("GET", "/api/v1/model/deployment/wine-v1"),
    ("DELETE", "/api/v1/model/deployment/wine-v1"),
    ("GET", "/api/v1/model/deployment/wine-v1/default-route"),
    ("GET", "/api/v1/model/route"),
    ("POST", "/api/v1/model/route"),
    ("DELETE", "/api/v1/model/route/ab"),
    ("GET", "/swagger/openapi.json"),
    ("GET", "/service-catalog/api/models"),
    ("GET", "/service-catalog/api/models/wine-v1"),
    ("GET", "/status/api/summary"),
    ("POST", "/status/index.html"),
    ("GET", "/openapi.json"),
    ("GET", "/"),
    ("GET", "/nowhere"),
]


@pytest.fixture(scope="module")
def stack(mlgate_module, demo_models):
    return mlgate_module(["-f", str(EXAMPLES / "wine-v1.yaml")])


@pytest.mark.parametrize(("number", "method", "path"),
                         [(n, m, p) for n, (m, p) in enumerate(PROTECTED)],
                         ids=[f"{m} {p}" for m, p in PROTECTED])
def test_every_path_but_health_and_metrics_refuses_without_a_valid_token(stack, number, method,
                                                                         path):
    # Each path from its own loopback address: by default an address that keeps sending
    # invalid tokens is answered 429 after 20 of them (test_credentials checks that).
    transport = httpx.HTTPTransport(local_address=f"127.0.0.{10 + number}")
    with httpx.Client(base_url=stack.url, timeout=30, transport=transport) as client:
        for headers in ({}, {"Authorization": "Bearer x.y.z"},
                        {"Authorization": f"Bearer {stack.token[:-4]}AAAA"},
                        {"Authorization": f"Basic {stack.token}"}):
            resp = client.request(method, path, headers=headers, json={})
            assert resp.status_code == 401, (headers, resp.text)
            assert resp.headers["WWW-Authenticate"].startswith('Bearer realm="mlgate"')
            assert resp.headers["request-id"]
            assert resp.json()["message"]


def test_health_and_metrics_need_no_token(stack):
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/metrics").status_code == 200


# The documented exception: the pages' static files (the same for everyone, no data).
PAGES = ["/swagger/index.html", "/swagger/swagger-initializer.js", "/service-catalog/",
         "/service-catalog/catalog.js", "/status/", "/status/status.js"]


@pytest.mark.parametrize("path", PAGES)
def test_the_pages_static_files_need_no_token_and_carry_no_data(stack, path):
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        resp = client.get(path)
    assert resp.status_code == 200
    assert resp.headers["content-type"].split(";")[0] in (
        "text/html", "text/javascript", "application/javascript")
    assert "wine-v1" not in resp.text  # nothing about the deployments is in a page file


def test_the_signing_key_is_private_to_its_owner(stack):
    keys = stack.data_dir / "keys"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert stat.S_IMODE((keys / "jwt-signing-key.pem").stat().st_mode) == 0o600


def mlgate_token(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deploy.cli", "token", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_mlgate_token_prints_tokens_the_stack_accepts_for_their_roles(stack):
    viewer = mlgate_token("--data-dir", str(stack.data_dir), "--role", "viewer", "--sub", "vic",
                          "--ttl", "10m")
    assert viewer.returncode == 0, viewer.stderr
    token = viewer.stdout.strip()
    assert token.count(".") == 2 and "\n" not in token
    scientist = mlgate_token("--data-dir", str(stack.data_dir), "--role", "data_scientist")
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        as_viewer = {"Authorization": f"Bearer {token}"}
        assert client.get("/model/wine-v1/api/model/info", headers=as_viewer).status_code == 200
        denied = client.post("/model/wine-v1/api/model/invoke", json=SEED, headers=as_viewer)
        assert denied.status_code == 403
        assert denied.json()["message"] == (
            "role(s) viewer may not invoke deployment 'wine-v1'")
        ok = client.post("/model/wine-v1/api/model/invoke", json=SEED,
                         headers={"Authorization": f"Bearer {scientist.stdout.strip()}"})
        assert ok.status_code == 200


def test_a_token_for_another_data_dir_is_refused(stack, tmp_path):
    other = mlgate_token("--data-dir", str(tmp_path / "elsewhere"))
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        resp = client.get("/model/wine-v1/api/model/info",
                          headers={"Authorization": f"Bearer {other.stdout.strip()}"})
    assert resp.status_code == 401
    assert resp.json()["reason"] in ("unknown_kid", "bad_signature")


@pytest.mark.parametrize(("args", "fragment"), [
    (["--ttl", "soon"], "not a duration"),
    (["--ttl", "0"], "not a duration"),
])
def test_mlgate_token_errors(tmp_path, args, fragment):
    result = mlgate_token("--data-dir", str(tmp_path), *args)
    assert result.returncode == 2 and fragment in result.stderr


def test_mlgate_token_refuses_when_an_external_issuer_is_configured(tmp_path):
    config = tmp_path / "mlgate.yaml"
    config.write_text("auth:\n  jwks_url: http://127.0.0.1:9/certs\n")
    result = mlgate_token("--config", str(config), "--data-dir", str(tmp_path))
    assert result.returncode == 2 and "external issuer" in result.stderr


def test_turning_auth_off_is_explicit_and_warned_about_at_every_start(mlgate, tmp_path):
    config = tmp_path / "mlgate.yaml"
    config.write_text("auth:\n  enabled: false\n")
    proc = mlgate(["--config", str(config)])
    assert proc.token == ""
    with httpx.Client(base_url=proc.url, timeout=30) as client:
        assert client.get("/openapi.json").status_code == 200
    assert proc.stop() == 0
    assert "authentication is OFF" in proc.stderr()
    again = mlgate(["--config", str(config)], data_dir=proc.data_dir)
    again.stop()
    assert again.stderr().count("authentication is OFF") == 1


def test_a_broken_auth_config_stops_start_up_with_exit_2(tmp_path):
    config = tmp_path / "mlgate.yaml"
    config.write_text(f"auth:\n  policy_file: {tmp_path / 'missing.yaml'}\n")
    result = subprocess.run([sys.executable, "-m", "deploy.cli", "up", "--port", "0",
                             "--config", str(config), "--data-dir", str(tmp_path / "d")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "auth.policy_file" in result.stderr
