"""Schemathesis against a running ``mlgate up``: no 5xx, answers as documented, auth enforced.

Runs the ``st`` CLI on the gateway's own ``/openapi.json`` (gateway and feedback
operations) with an admin token.
``ignored_auth`` also replays each operation without credentials and fails if any
answers as if they were not needed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES

pytestmark = pytest.mark.e2e
ST = Path(sys.executable).parent / "st"
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance,ignored_auth")


@pytest.fixture(scope="module")
def stack(mlgate_module, demo_models):
    return mlgate_module(["-f", str(EXAMPLES / "wine-v1.yaml")])


def schemathesis(stack, document: dict, base_url: str, workdir: Path,
                 max_examples: int) -> subprocess.CompletedProcess[str]:
    schema = workdir / "openapi.json"
    schema.write_text(json.dumps(document))
    return subprocess.run(
        [str(ST), "run", str(schema), "--url", base_url, "--checks", CHECKS,
         "-H", f"Authorization: Bearer {stack.token}", "--max-examples", str(max_examples),
         "--seed", "20261125", "--generation-database", "none", "--workers", "2",
         "--request-timeout", "30", "--no-color"],
        cwd=workdir, capture_output=True, text=True, timeout=600)


def test_gateway_and_feedback_operations(stack, tmp_path):
    with stack.client() as client:
        doc = client.get("/openapi.json").json()
    assert {"/model/{deployment}/api/model/invoke", "/feedback/model/",
            "/api/v1/feedback", "/health"} <= set(doc["paths"])
    result = schemathesis(stack, doc, stack.url, tmp_path, max_examples=40)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout.split("SUMMARY")[-1]


def test_the_records_operation_of_the_management_api(stack, tmp_path):
    """``GET /api/v1/records``: every generated query answers 200 or a documented 4xx."""
    with stack.client() as client:
        doc = client.get("/swagger/openapi.json").json()
    doc["paths"] = {"/api/v1/records": doc["paths"]["/api/v1/records"]}
    result = schemathesis(stack, doc, stack.url, tmp_path, max_examples=60)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout.split("SUMMARY")[-1]
