"""The spooling writer against a real local directory and a real S3 server (moto)."""

import asyncio
import shutil
from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest

from storage import (
    FEEDBACK,
    LocalBackend,
    RecordWriter,
    SpoolFull,
    StorageError,
    WriterConfig,
    feedback_record,
)
from storage.backends.s3 import S3Backend
from tests.storage.servers import S3_ENV, bucket_lines, free_port
from tests.storage.test_records import exchange

WHEN = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)


def stored(root, kind=None):
    out = []
    for path in sorted(root.rglob("*.json")):
        if kind is None or path.relative_to(root).parts[0] == kind:
            out += [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return out


def fb(i, model="wine"):
    return feedback_record(f"r{i}", model, "1.0", {"v": i}, WHEN)


def writer_for(tmp_path, backend=None, **kw):
    kw.setdefault("flush_interval", 60)
    return RecordWriter(backend or LocalBackend(tmp_path / "bucket"), tmp_path / "spool",
                        WriterConfig(**kw))


def dead_s3():
    """An S3 endpoint where nothing listens: every upload fails and is retried."""
    return S3Backend("b", endpoint_url=f"http://127.0.0.1:{free_port()}")


def segments(tmp_path):
    return sorted(p.name for p in (tmp_path / "spool").glob("*.seg"))


async def test_exchanges_are_spooled_then_uploaded_in_the_seed_layout(tmp_path):
    writer = writer_for(tmp_path)
    await writer.start()
    for i in range(5):
        assert writer.offer(exchange(request_id=f"r{i}", when=WHEN))
    await writer.close()
    bucket = tmp_path / "bucket"
    assert [r["request_id"] for r in stored(bucket, "request_response")] == [
        f"r{i}" for i in range(5)]
    assert [r["request_id"] for r in stored(bucket, "response_body")] == [
        f"r{i}" for i in range(5)]
    keys = sorted(p.relative_to(bucket).as_posix() for p in bucket.rglob("*.json"))
    run = writer.spool.run_id
    assert keys == [
        f"request_response/test-e2e-wine/1.0/year=2026/month=11/day=25/2026112509_{run}000001.json",
        f"response_body/test-e2e-wine/1.0/year=2026/month=11/day=25/2026112509_{run}000002.json",
    ]
    assert segments(tmp_path) == []
    assert writer.stats.written["request_response"] == 5 and writer.stats.objects == 2


async def test_segments_are_sealed_by_record_count(tmp_path):
    writer = writer_for(tmp_path, flush_records=3)
    await writer.start()
    for i in range(10):
        writer.offer(exchange(request_id=f"r{i}", when=WHEN))
    await writer.flush()
    objects = sorted((tmp_path / "bucket" / "request_response").rglob("*.json"))
    assert len(objects) >= 3
    assert sorted(r["request_id"] for r in stored(tmp_path / "bucket", "request_response")) == \
        sorted(f"r{i}" for i in range(10))
    await writer.close()


async def test_durable_write_is_synced_in_the_spool_with_group_commit(tmp_path):
    writer = writer_for(tmp_path)
    await writer.start()
    await asyncio.gather(*(writer.write_durable(FEEDBACK, fb(i), WHEN) for i in range(50)))
    # acknowledged: in the spool on disk, not necessarily in the bucket yet
    [segment] = (tmp_path / "spool").glob("*.seg")
    lines = [orjson.loads(line) for line in segment.read_bytes().splitlines()]
    assert sorted(r["request_id"] for r in lines) == sorted(f"r{i}" for i in range(50))
    assert writer.stats.spooled[FEEDBACK] == 50
    assert 1 <= writer.stats.spool_syncs < 50  # one fsync served many records
    await writer.close()
    assert len(stored(tmp_path / "bucket", FEEDBACK)) == 50


async def test_shutdown_deadline_leaves_segments_for_the_next_start(tmp_path, s3_server):
    writer = writer_for(tmp_path, backend=dead_s3(), shutdown_timeout=0.2, retry_base=0.05)
    await writer.start()
    for i in range(4):
        await writer.write_durable(FEEDBACK, fb(i), WHEN)
    writer.offer(exchange(request_id="x", when=WHEN))
    await writer.close()
    left = segments(tmp_path)
    assert len(left) == 3 and writer.stats.objects == 0
    assert writer.stats.spool_segments == 3

    bucket = s3_server.new_bucket()
    backend = S3Backend(bucket, endpoint_url=s3_server.url)
    again = writer_for(tmp_path, backend=backend, prefix="logs")
    await again.start()
    await again.write_durable(FEEDBACK, fb(99), WHEN)
    await again.close()
    assert segments(tmp_path) == []
    lines = bucket_lines(s3_server, bucket)
    ids = Counter(orjson.loads(line)["request_id"] for line in lines.elements())
    assert ids == Counter({"r0": 1, "r1": 1, "r2": 1, "r3": 1, "r99": 1, "x": 2})
    # the leftovers kept the key their segment names gave them
    keys = s3_server.keys(bucket)
    for name in left:
        number = name.removesuffix(".seg").split("~")[-1]
        assert any(k.endswith(f"_{number}.json") for k in keys)


async def test_reuploading_a_segment_rewrites_the_same_key(tmp_path, s3_server):
    """A crash after the upload but before the segment is deleted: nothing is duplicated."""
    writer = writer_for(tmp_path, backend=dead_s3(), shutdown_timeout=0)
    await writer.start()
    for i in range(3):
        await writer.write_durable(FEEDBACK, fb(i), WHEN)
    await writer.close()
    [segment] = (tmp_path / "spool").glob("*.seg")
    shutil.copy(segment, tmp_path / "copy")

    bucket = s3_server.new_bucket()
    for _ in range(2):  # the second run finds the "undeleted" segment again
        w = writer_for(tmp_path, backend=S3Backend(bucket, endpoint_url=s3_server.url))
        await w.start()
        await w.close()
        if not segments(tmp_path):
            shutil.copy(tmp_path / "copy", segment)
    assert len(s3_server.keys(bucket)) == 1
    assert sum(bucket_lines(s3_server, bucket).values()) == 3


async def test_torn_last_line_is_skipped_and_counted(tmp_path):
    writer = writer_for(tmp_path, backend=dead_s3(), shutdown_timeout=0)
    await writer.start()
    for i in range(3):
        await writer.write_durable(FEEDBACK, fb(i), WHEN)
    await writer.close()
    [segment] = (tmp_path / "spool").glob("*.seg")
    with open(segment, "ab") as f:
        f.write(b'{"request_id": "r3", "model_name": "wi')  # power lost mid-write

    again = writer_for(tmp_path)
    await again.start()
    await again.close()
    assert [r["request_id"] for r in stored(tmp_path / "bucket")] == ["r0", "r1", "r2"]
    assert again.stats.torn_lines == 1
    assert again.stats.written[FEEDBACK] == 3


async def test_full_spool_drops_request_logs_and_refuses_feedback(tmp_path):
    writer = writer_for(tmp_path, backend=dead_s3(), spool_max_bytes=8000,
                        feedback_reserve=0.25, shutdown_timeout=0, flush_interval=0.05)
    await writer.start()
    for i in range(40):
        writer.offer(exchange(request_id=f"x{i}", when=WHEN))
        await asyncio.sleep(0)
    for _ in range(500):  # until every offered record is either spooled or dropped
        if writer.stats.spooled["request_response"] + \
                writer.stats.dropped["request_response"] == 40:
            break
        await asyncio.sleep(0.02)
    assert writer.stats.dropped["request_response"] > 0
    assert writer.stats.spool_bytes <= 6000
    acked = []
    with pytest.raises(SpoolFull):
        for i in range(200):
            await writer.write_durable(FEEDBACK, fb(i), WHEN)
            acked.append(f"r{i}")
    assert acked and writer.stats.refused[FEEDBACK] == 1
    assert writer.stats.spool_bytes <= 8000
    assert not writer.offer(exchange(when=WHEN))  # still full
    spooled_logs = writer.stats.spooled["request_response"]
    await writer.close()

    again = writer_for(tmp_path)
    await again.start()
    await again.close()
    bucket = tmp_path / "bucket"
    assert sorted(r["request_id"] for r in stored(bucket, FEEDBACK)) == sorted(acked)
    assert len(stored(bucket, "request_response")) == spooled_logs


async def test_unsafe_model_names_are_dropped_not_written(tmp_path):
    writer = writer_for(tmp_path)
    await writer.start()
    writer.offer(exchange(model_name="../../etc", when=WHEN))
    with pytest.raises(ValueError):
        await writer.write_durable(FEEDBACK, fb(1, model="../etc"), WHEN)
    await writer.close()
    assert not (tmp_path / "bucket").exists()
    assert writer.stats.dropped["request_response"] == 1


async def test_one_process_per_spool_directory(tmp_path):
    first = writer_for(tmp_path)
    await first.start()
    second = writer_for(tmp_path)
    with pytest.raises(StorageError, match="in use by another"):
        await second.start()
    await first.close()
    await second.start()
    await second.close()


async def test_memory_queue_bound_and_closed_writer_drop_and_count(tmp_path):
    writer = writer_for(tmp_path, max_pending_records=2)
    assert [writer.offer(exchange(when=WHEN)) for _ in range(5)] == [
        True, True, False, False, False]
    assert writer.stats.dropped["request_response"] == 3
    await writer.close()
    assert not writer.offer(exchange(when=WHEN))
    with pytest.raises(StorageError):
        await writer.write_durable(FEEDBACK, fb(1), WHEN)
    assert len(stored(tmp_path / "bucket", "request_response")) == 2


async def test_the_tap_sees_each_record_with_the_key_and_line_it_will_have_in_the_bucket(
        tmp_path):
    seen = []
    writer = RecordWriter(LocalBackend(tmp_path / "bucket"), tmp_path / "spool",
                          WriterConfig(flush_interval=60, flush_records=4),
                          tap=lambda *args: seen.append(args),
                          tap_kinds=("response_body", FEEDBACK))
    await writer.start()
    for i in range(6):
        writer.offer(exchange(request_id=f"r{i}", when=WHEN))
    await asyncio.gather(*(writer.write_durable(FEEDBACK, fb(i), WHEN) for i in range(3)))
    await writer.close()
    assert {kind for kind, *_ in seen} == {"response_body", FEEDBACK}  # no request_response
    by_key: dict[str, dict[int, str]] = {}
    for _kind, key, first, records in seen:
        for n, record in enumerate(records):
            assert first + n not in by_key.setdefault(key, {})
            by_key[key][first + n] = record["request_id"]
    bucket = tmp_path / "bucket"
    for key, lines in by_key.items():
        stored_ids = [orjson.loads(x)["request_id"]
                      for x in (bucket / key).read_bytes().splitlines()]
        assert stored_ids == [lines[n] for n in range(len(stored_ids))]
        assert len(lines) == len(stored_ids)
    assert sum(len(v) for v in by_key.values()) == 9


async def test_a_failing_tap_never_stops_the_spool(tmp_path):
    def tap(*_args):
        raise RuntimeError("bug")

    writer = RecordWriter(LocalBackend(tmp_path / "bucket"), tmp_path / "spool",
                          WriterConfig(flush_interval=60), tap=tap)
    await writer.start()
    writer.offer(exchange(request_id="r1", when=WHEN))
    await writer.write_durable(FEEDBACK, fb(1), WHEN)
    await writer.close()
    assert len(stored(tmp_path / "bucket")) == 3
