import asyncio
from datetime import UTC, datetime

import orjson
import pytest

from storage import (
    FEEDBACK,
    LocalBackend,
    RecordWriter,
    StorageError,
    WriterConfig,
    feedback_record,
)
from tests.storage.test_records import exchange

WHEN = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)


def read_lines(root, kind):
    out = []
    for path in sorted(root.rglob("*.json")):
        if path.relative_to(root).parts[0] == kind:
            out += [orjson.loads(line) for line in path.read_bytes().splitlines()]
    return out


async def test_exchanges_are_flushed_on_close(tmp_path):
    writer = RecordWriter(LocalBackend(tmp_path), WriterConfig(flush_interval=60))
    await writer.start()
    for i in range(5):
        assert writer.offer(exchange(request_id=f"r{i}", when=WHEN))
    await writer.close()
    rr = read_lines(tmp_path, "request_response")
    rb = read_lines(tmp_path, "response_body")
    assert [r["request_id"] for r in rr] == [f"r{i}" for i in range(5)]
    assert [r["request_id"] for r in rb] == [f"r{i}" for i in range(5)]
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json"))
    assert files == [
        "request_response/test-e2e-wine/1.0/year=2026/month=11/day=25/2026112509_0.json",
        "response_body/test-e2e-wine/1.0/year=2026/month=11/day=25/2026112509_0.json",
    ]


async def test_flush_by_record_count(tmp_path):
    writer = RecordWriter(LocalBackend(tmp_path), WriterConfig(flush_records=3,
                                                               flush_interval=60))
    await writer.start()
    for i in range(3):
        writer.offer(exchange(request_id=f"r{i}", when=WHEN))
    for _ in range(100):
        if read_lines(tmp_path, "request_response"):
            break
        await asyncio.sleep(0.01)
    assert len(read_lines(tmp_path, "request_response")) == 3
    await writer.close()


async def test_object_numbers_continue_after_existing_objects(tmp_path):
    for round_ in range(3):
        writer = RecordWriter(LocalBackend(tmp_path), WriterConfig(flush_interval=60))
        await writer.start()
        writer.offer(exchange(request_id=f"r{round_}", when=WHEN))
        await writer.close()
    names = sorted(p.name for p in (tmp_path / "request_response").rglob("*.json"))
    assert names == ["2026112509_0.json", "2026112509_1.json", "2026112509_2.json"]


async def test_durable_write_returns_after_the_object_exists(tmp_path):
    writer = RecordWriter(LocalBackend(tmp_path), WriterConfig(flush_interval=60))
    await writer.start()
    records = [feedback_record(f"r{i}", "wine", "1.0", {"v": i}, WHEN) for i in range(20)]
    await asyncio.gather(*(writer.write_durable(FEEDBACK, r, WHEN) for r in records))
    stored = read_lines(tmp_path, FEEDBACK)
    assert sorted(r["request_id"] for r in stored) == sorted(f"r{i}" for i in range(20))
    # group commit: 20 concurrent writers share far fewer objects
    assert len(list((tmp_path / FEEDBACK).rglob("*.json"))) < 20
    await writer.close()


async def test_queue_bound_drops_and_counts(tmp_path):
    writer = RecordWriter(LocalBackend(tmp_path), WriterConfig(max_pending_records=2,
                                                               flush_records=100,
                                                               flush_interval=60))
    results = [writer.offer(exchange(when=WHEN)) for _ in range(5)]
    assert results == [True, True, False, False, False]
    assert writer.stats.dropped["request_response"] == 3
    await writer.close()
    assert len(read_lines(tmp_path, "request_response")) == 2


class FailingBackend(LocalBackend):
    def __init__(self, root, failures):
        super().__init__(root)
        self.failures = failures

    async def put(self, key, data):
        if self.failures > 0:
            self.failures -= 1
            raise StorageError("bucket unavailable")
        await super().put(key, data)


async def test_put_is_retried(tmp_path):
    writer = RecordWriter(FailingBackend(tmp_path, 2), WriterConfig(flush_interval=60))
    await writer.start()
    await writer.write_durable(FEEDBACK, feedback_record("r", "wine", "1.0", 1, WHEN), WHEN)
    assert [r["request_id"] for r in read_lines(tmp_path, FEEDBACK)] == ["r"]
    assert writer.stats.put_failures == 2
    await writer.close()


async def test_durable_write_fails_when_storage_stays_down(tmp_path):
    writer = RecordWriter(FailingBackend(tmp_path, 100), WriterConfig(flush_interval=60,
                                                                      put_attempts=2))
    await writer.start()
    with pytest.raises(StorageError):
        await writer.write_durable(FEEDBACK, feedback_record("r", "w", "1", 1, WHEN), WHEN)
    await writer.close()
    assert read_lines(tmp_path, FEEDBACK) == []


async def test_request_logs_survive_a_short_outage(tmp_path):
    backend = FailingBackend(tmp_path, 2)
    writer = RecordWriter(backend, WriterConfig(flush_interval=60, put_attempts=1))
    await writer.start()
    writer.offer(exchange(request_id="kept", when=WHEN))
    await writer.flush()  # both kinds fail once and are kept for the next flush
    assert read_lines(tmp_path, "request_response") == []
    await writer.close()
    assert [r["request_id"] for r in read_lines(tmp_path, "request_response")] == ["kept"]


async def test_unsafe_model_names_are_dropped_not_written(tmp_path):
    writer = RecordWriter(LocalBackend(tmp_path), WriterConfig(flush_interval=60))
    await writer.start()
    writer.offer(exchange(model_name="../../etc", when=WHEN))
    await writer.close()
    assert list(tmp_path.rglob("*")) == []
    assert writer.stats.dropped["request_response"] == 1
