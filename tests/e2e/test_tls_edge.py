"""TLS termination at the edge: ``mlgate up --workers 2`` with a certificate and key from
files serves HTTPS on its port, and a renewed pair written over them is what every process
presents to new connections, without a restart."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from tests.conftest import EXAMPLES, SEED_COLUMNS, SEED_ROW, wait_until
from tests.tls_certs import served_serial, write_self_signed

pytestmark = pytest.mark.e2e


def test_https_on_the_port_and_a_renewed_certificate_without_a_restart(mlgate, demo_models,
                                                                       tmp_path: Path):
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    first = write_self_signed(cert, key)
    config = tmp_path / "mlgate.yaml"
    config.write_text(f"tls:\n  cert_file: {cert}\n  key_file: {key}\n  reload_interval: 0.2\n")
    stack = mlgate(["--workers", "2", "--config", str(config),
                    "-f", str(EXAMPLES / "wine-v1.yaml")])
    assert stack.url.startswith("https://127.0.0.1:")
    port = int(stack.url.rsplit(":", 1)[1])
    trust = ssl.create_default_context(cafile=str(cert))
    with httpx.Client(base_url=stack.url, headers=stack.headers, verify=trust,
                      timeout=60) as client:
        wait_until(lambda: client.get("/api/v1/model/deployment/wine-v1").json()["status"][
            "state"] == "Ready", what="wine-v1 Ready")
        resp = client.post("/model/wine-v1/api/model/invoke",
                           json={"columns": SEED_COLUMNS, "data": [SEED_ROW]})
        assert resp.status_code == 200 and resp.headers["model-name"] == "wine"
    with pytest.raises(httpx.TransportError):  # plain HTTP is not spoken on that port
        httpx.get(stack.url.replace("https://", "http://") + "/health", timeout=10)
    assert {served_serial("127.0.0.1", port) for _ in range(16)} == {first}

    second = write_self_signed(cert, key)  # renewed in place, as cert-manager would
    wait_until(lambda: {served_serial("127.0.0.1", port) for _ in range(16)} == {second}, 30,
               0.2, what="every process to serve the renewed certificate")
    renewed = ssl.create_default_context(cafile=str(cert))
    assert httpx.get(f"{stack.url}/health", verify=renewed, timeout=10).status_code == 200
