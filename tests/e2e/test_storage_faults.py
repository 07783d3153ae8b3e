"""Fault tests: whatever the bucket or the process does, every accepted record reaches the
bucket exactly once. Each test checks the exact multiset of records in the bucket."""

from __future__ import annotations

import signal
from collections import Counter

import httpx
import orjson
import pytest

from tests.conftest import EXAMPLES, SEED_COLUMNS, SEED_ROW
from tests.storage.servers import bucket_lines, storage_stats, wait_until

pytestmark = pytest.mark.e2e
WINE_V1 = ["-f", str(EXAMPLES / "wine-v1.yaml")]
FAST_RETRY = {"MLGATE_STORAGE_FLUSH_INTERVAL": "0.2", "MLGATE_STORAGE_TIMEOUT": "2",
              "MLGATE_STORAGE_SPOOL_RETRY_MAX_DELAY": "0.5"}


def invoke(client: httpx.Client, request_id: str) -> None:
    resp = client.post("/model/wine-v1/api/model/invoke", headers={"Request-ID": request_id},
                       json={"columns": SEED_COLUMNS, "data": [SEED_ROW]})
    assert resp.status_code == 200, resp.text  # a storage outage never fails an inference


def feedback(client: httpx.Client, request_id: str, value: int) -> httpx.Response:
    return client.post("/feedback/model/", json={"v": value}, headers={
        "x-model-name": "wine", "x-model-version": "1.0", "Request-ID": request_id})


def send_feedback(client: httpx.Client, request_id: str, value: int) -> None:
    resp = feedback(client, request_id, value)
    assert resp.status_code == 200, resp.text


def by_kind(lines: Counter[bytes]) -> dict[str, Counter[str]]:
    """kind -> multiset of request ids (feedback: of "id=value")."""
    out: dict[str, Counter[str]] = {}
    for line, count in lines.items():
        rec = orjson.loads(line)
        kind = ("feedback" if "payload" in rec else
                "request_response" if "request_content" in rec else "response_body")
        label = rec["request_id"]
        if kind == "feedback":
            label += f"={rec['payload']['json']['v']}"
        out.setdefault(kind, Counter())[label] += count
    return out


def upload_failed(stack) -> bool:
    return "upload of " in stack.stderr() and " failed (attempt" in stack.stderr()


def total(store, bucket: str) -> int:
    return sum(bucket_lines(store, bucket).values())


def test_s3_hangs_while_traffic_flows(mlgate, demo_models, own_s3_server):
    """moto is stopped (SIGSTOP: requests hang, answers are lost) mid-traffic, then continued."""
    s3 = own_s3_server
    bucket = s3.new_bucket()
    stack = mlgate(WINE_V1, env={**s3.env(bucket, "outage"), **FAST_RETRY})
    with stack.client() as client:
        for i in range(60):
            if i == 20:
                s3.server.pause()
            if i == 45:  # keep the bucket stopped until an upload has failed on it
                assert wait_until(lambda: upload_failed(stack))
                s3.server.resume()
            invoke(client, f"q-{i}")
            send_feedback(client, f"q-{i}", i)
    assert wait_until(lambda: total(s3, bucket) >= 180)
    assert stack.stop() == 0
    expected_ids = Counter(f"q-{i}" for i in range(60))
    assert by_kind(bucket_lines(s3, bucket)) == {
        "request_response": expected_ids, "response_body": expected_ids,
        "feedback": Counter(f"q-{i}={i}" for i in range(60))}
    stats = storage_stats(stack.stderr())
    assert stats["upload_failures"] >= 1  # the outage was seen, and outlived


def test_gcs_emulator_stopped_and_started_again(mlgate, own_gcs_server):
    gcs = own_gcs_server
    bucket = gcs.new_bucket()
    stack = mlgate([], env={**gcs.env(bucket), **FAST_RETRY})
    with stack.client() as client:
        for i in range(20):
            send_feedback(client, f"g-{i}", i)
        gcs.server.stop()
        for i in range(20, 50):  # acknowledged from the spool while the bucket is gone
            send_feedback(client, f"g-{i}", i)
        assert wait_until(lambda: upload_failed(stack))
        gcs.server.start()
        for i in range(50, 60):
            send_feedback(client, f"g-{i}", i)
    assert wait_until(lambda: total(gcs, bucket) >= 60)
    assert stack.stop() == 0
    assert by_kind(bucket_lines(gcs, bucket)) == {
        "feedback": Counter(f"g-{i}={i}" for i in range(60))}
    assert storage_stats(stack.stderr())["upload_failures"] >= 1


def spool_segments(stack) -> list:
    return sorted((stack.data_dir / "spool").glob("*.seg"))


def test_sigkill_right_after_acknowledging_feedback(mlgate, s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    # Segments are sealed only after an hour: nothing is uploaded before the kill.
    env = {**s3_server.env(bucket), "MLGATE_STORAGE_FLUSH_INTERVAL": "3600"}
    stack = mlgate([], data_dir=tmp_path / "node", env=env)
    with stack.client() as client:
        for i in range(5):
            send_feedback(client, f"k-{i}", i)
    stack.proc.send_signal(signal.SIGKILL)
    assert stack.stop() == -signal.SIGKILL
    assert s3_server.keys(bucket) == []
    assert spool_segments(stack)  # acknowledged, not yet uploaded

    again = mlgate([], data_dir=tmp_path / "node", env=env)
    assert again.stop() == 0
    assert by_kind(bucket_lines(s3_server, bucket)) == {
        "feedback": Counter(f"k-{i}={i}" for i in range(5))}
    assert spool_segments(again) == []


def test_torn_last_line_is_skipped_and_counted(mlgate, s3_server, tmp_path):
    bucket = s3_server.new_bucket()
    env = {**s3_server.env(bucket), "MLGATE_STORAGE_FLUSH_INTERVAL": "3600"}
    stack = mlgate([], data_dir=tmp_path / "node", env=env)
    with stack.client() as client:
        for i in range(4):
            send_feedback(client, f"t-{i}", i)
    stack.proc.send_signal(signal.SIGKILL)
    stack.stop()
    segment = spool_segments(stack)[-1]  # the newest (file names start with the hour)
    with open(segment, "ab") as f:  # the power went out in the middle of the next record
        f.write(b'{"request_id":"t-4","model_name":"wine","model_version":"1.0","payl')

    again = mlgate([], data_dir=tmp_path / "node", env=env)
    assert again.stop() == 0
    assert by_kind(bucket_lines(s3_server, bucket)) == {
        "feedback": Counter(f"t-{i}={i}" for i in range(4))}
    stats = storage_stats(again.stderr())
    assert stats["torn_lines"] == 1 and stats["written"] == {"feedback": 4}


def test_two_writers_on_the_same_partition_never_overwrite(mlgate, s3_server):
    bucket = s3_server.new_bucket()
    env = {**s3_server.env(bucket, "shared"), "MLGATE_STORAGE_FLUSH_RECORDS": "4",
           "MLGATE_STORAGE_FLUSH_INTERVAL": "0.1"}
    a, b = mlgate([], env=env), mlgate([], env=env)
    with a.client() as ca, b.client() as cb:
        for i in range(40):
            send_feedback(ca, f"a-{i}", i)
            send_feedback(cb, f"b-{i}", i)
    assert a.stop() == 0 and b.stop() == 0
    keys = s3_server.keys(bucket)
    assert all(k.startswith("shared/feedback/wine/1.0/year=") for k in keys)
    objects = storage_stats(a.stderr())["objects"] + storage_stats(b.stderr())["objects"]
    assert len(keys) == objects >= 20  # every upload made an object of its own
    assert by_kind(bucket_lines(s3_server, bucket)) == {"feedback": Counter(
        [f"a-{i}={i}" for i in range(40)] + [f"b-{i}={i}" for i in range(40)])}


def test_full_spool_drops_request_logs_and_refuses_feedback(mlgate, demo_models,
                                                            own_s3_server):
    s3 = own_s3_server
    bucket = s3.new_bucket()
    env = {**s3.env(bucket), **FAST_RETRY, "MLGATE_STORAGE_SPOOL_MAX_BYTES": "40000",
           "MLGATE_STORAGE_SPOOL_FEEDBACK_RESERVE": "0.25"}
    stack = mlgate(WINE_V1, env=env)
    s3.server.pause()
    acked: list[str] = []
    refused = None
    with stack.client() as client:
        for i in range(80):  # request logs fill their share of the spool, then are dropped
            invoke(client, f"s-{i}")
        for i in range(400):
            resp = feedback(client, f"s-{i}", i)
            if resp.status_code != 200:
                refused = resp
                break
            acked.append(f"s-{i}={i}")
        assert refused is not None and refused.status_code == 503
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.json()["registered"] is False
        for i in range(80, 90):  # inference still answers while the spool is full
            invoke(client, f"s-{i}")
    s3.server.resume()
    assert wait_until(lambda: by_kind(bucket_lines(s3, bucket)).get("feedback", Counter())
                      == Counter(acked))
    assert stack.stop() == 0
    stats = storage_stats(stack.stderr())
    assert stats["dropped"]["request_response"] > 0 and stats["refused"] == {"feedback": 1}
    stored = by_kind(bucket_lines(s3, bucket))
    assert stored["feedback"] == Counter(acked)  # nothing acknowledged is lost
    logged = stored["request_response"]
    assert sum(logged.values()) == stats["spooled"]["request_response"]
    assert max(logged.values()) == 1 and sum(logged.values()) < 90
