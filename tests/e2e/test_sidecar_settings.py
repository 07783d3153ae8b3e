"""``mlgate sidecar`` honours the same ``mlgate.yaml`` as the edge: header limits, the access
log switch and the log format. Each of these was dropped by sidecars before the sidecar was
built by the composition root (:mod:`deploy.compose`)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.conftest import ROOT
from tests.e2e.stub_predictor import stub_predictor

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def predictor() -> Iterator[int]:
    with stub_predictor() as port:
        yield port


def run_sidecar(tmp_path: Path, upstream: int, config: str, calls) -> str:
    """Start a sidecar with ``config``, run ``calls(client)``, stop it; its stderr."""
    cfg = tmp_path / "mlgate.yaml"
    cfg.write_text(config)
    err = tmp_path / "sidecar.stderr"
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.cli", "sidecar", "--upstream", f"127.0.0.1:{upstream}",
             "--host", "127.0.0.1", "--port", "0", "--deployment-id", "wine", "--no-records",
             "--config", str(cfg), "--data-dir", str(tmp_path / "d")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            line = proc.stdout.readline()
            assert line.startswith("mlgate sidecar ready on "), err.read_text()
            with httpx.Client(base_url=line.split()[4], timeout=30) as client:
                calls(client)
        finally:
            proc.terminate()
            assert proc.wait(30) == 0
    return err.read_text()


def test_header_limits_of_the_config_apply(tmp_path, predictor):
    def calls(client: httpx.Client) -> None:
        ok = client.post("/api/model/invoke", json={"data": [[1]]})
        assert ok.status_code == 200
        many = {f"x-extra-{i}": "1" for i in range(20)}
        refused = client.post("/api/model/invoke", json={"data": [[1]]}, headers=many)
        assert refused.status_code == 400

    run_sidecar(tmp_path, predictor, "gateway:\n  max_headers: 12\n", calls)


def test_access_log_off_and_json_log_format(tmp_path, predictor):
    def calls(client: httpx.Client) -> None:
        for _ in range(3):
            assert client.post("/api/model/invoke", json={"data": [[1]]}).status_code == 200

    stderr = run_sidecar(tmp_path, predictor,
                         "logging:\n  format: json\n  access_log: false\n", calls)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "the sidecar logged nothing at all"
    records = [orjson.loads(line) for line in lines]  # every line is one JSON object
    assert not [r for r in records if r.get("logger") == "mlgate.access"]


def test_access_log_on_by_default(tmp_path, predictor):
    def calls(client: httpx.Client) -> None:
        assert client.post("/api/model/invoke", json={"data": [[1]]},
                           headers={"Request-ID": "side-log-1"}).status_code == 200

    stderr = run_sidecar(tmp_path, predictor, "{}\n", calls)
    assert "side-log-1" in stderr
