"""``make run``'s calls with records going to S3 (moto) and GCS (emulator), read back by
boto3, by the GCS JSON API and by ``mlgate records``."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime

import orjson
import pytest

from deploy.serve.demo import REQUEST
from tests.conftest import EXAMPLES, ROOT
from tests.storage.servers import bucket_lines

pytestmark = pytest.mark.e2e
KEY = re.compile(
    r"^mlgate/(request_response|response_body|feedback)/wine/1\.0/"
    r"year=(\d{4})/month=(\d\d)/day=(\d\d)/(\d{4})(\d\d)(\d\d)\d\d_\d+\.json$")


def records_cli(args: list[str], env: dict[str, str], data_dir) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "records", *args, "--data-dir", str(data_dir)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_demo_calls_land_in_s3_in_the_seed_layout(mlgate, demo_models, s3_server):
    bucket = s3_server.new_bucket()
    env = s3_server.env(bucket, prefix="mlgate")
    stack = mlgate(["-f", str(EXAMPLES / "wine-v1.yaml")], env=env)
    with stack.client() as client:
        resp = client.post("/model/wine-v1/api/model/invoke", content=REQUEST, headers={
            "Content-Type": "application/json", "Request-ID": "demo-request-1"})
        assert resp.status_code == 200, resp.text
        fb = client.post("/feedback/model/", json={"truthful": 1}, headers={
            "x-model-name": "wine", "x-model-version": "1.0", "Request-ID": "demo-request-1"})
        assert fb.status_code == 200 and fb.json()["registered"] is True
    assert stack.stop() == 0

    keys = s3_server.keys(bucket)
    assert sorted(KEY.match(k).group(1) for k in keys) == [
        "feedback", "request_response", "response_body"], keys
    for key in keys:
        m = KEY.match(key)
        assert m.group(2, 3, 4) == m.group(5, 6, 7)  # partition date = object name's date
    by_kind = {KEY.match(k).group(1): [orjson.loads(line) for line in
                                      s3_server.read(bucket, k).splitlines()] for k in keys}
    [rr] = by_kind["request_response"]
    assert rr["request_id"] == "demo-request-1" and rr["response_status"] == "200"
    assert orjson.loads(rr["request_content"]) == orjson.loads(REQUEST)
    [rb] = by_kind["response_body"]
    assert "prediction" in orjson.loads(rb["response_content"])
    assert by_kind["feedback"] == [{
        "request_id": "demo-request-1", "model_name": "wine", "model_version": "1.0",
        "payload": {"json": {"truthful": 1}}, "time": by_kind["feedback"][0]["time"],
        "time_us": by_kind["feedback"][0]["time_us"]}]

    # the CLI reads the same config from the environment
    cli_env = {**stack.env}
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    listed = records_cli(["ls", "--kind", "feedback", "--model", "wine", "--since", today],
                         cli_env, stack.data_dir)
    assert listed == [k for k in keys if "/feedback/" in k]
    printed = records_cli(["cat", "--model", "wine", "--version", "1.0"], cli_env,
                          stack.data_dir)
    assert sorted(orjson.loads(line)["request_id"] for line in printed) == [
        "demo-request-1"] * 3
    assert records_cli(["cat", "--kind", "feedback", "--model", "wine", "--until", "2020-01-01"],
                       cli_env, stack.data_dir) == []


def test_feedback_lands_in_gcs_and_reads_back(mlgate, gcs_server):
    bucket = gcs_server.new_bucket()
    stack = mlgate([], env=gcs_server.env(bucket, prefix="mlgate"))
    with stack.client() as client:
        for i in range(5):
            resp = client.post("/api/v1/feedback", json={"v": i}, headers={
                "model-name": "wine", "model-version": "1.0", "request-id": f"g-{i}"})
            assert resp.status_code == 200, resp.text
    assert stack.stop() == 0
    keys = gcs_server.keys(bucket)
    assert keys and all(KEY.match(k) and "/feedback/" in k for k in keys)
    lines = bucket_lines(gcs_server, bucket)
    assert sorted(orjson.loads(line)["payload"]["json"]["v"] for line in lines.elements()) == [
        0, 1, 2, 3, 4]
    printed = records_cli(["cat", "--kind", "feedback"], stack.env, stack.data_dir)
    assert sorted(orjson.loads(line)["request_id"] for line in printed) == [
        f"g-{i}" for i in range(5)]


def test_records_cli_on_local_storage_and_bad_input(mlgate, tmp_path):
    stack = mlgate([])
    with stack.client() as client:
        assert client.post("/feedback/model/", json={"ok": True}, headers={
            "x-model-name": "wine", "x-model-version": "2.0",
            "Request-ID": "local-1"}).status_code == 200
    assert stack.stop() == 0
    listed = records_cli(["ls"], {**stack.env}, stack.data_dir)
    assert len(listed) == 1 and listed[0].startswith("feedback/wine/2.0/year=")
    bad = subprocess.run([sys.executable, "-m", "deploy.cli", "records", "cat", "--since",
                          "yesterday", "--data-dir", str(stack.data_dir)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "yesterday" in bad.stderr
