"""Token buckets as GCRA cells: the pure rule, this process's table, and the table every
process of ``--workers N`` shares (checked here with real processes)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from gateway.buckets import LocalBuckets, SharedBuckets, gcra


def test_gcra_allows_the_burst_then_one_per_interval():
    tat, now, allowed = 0.0, 100.0, []
    for _ in range(5):
        take, tat = gcra(tat, now, interval=1.0, burst=3)
        allowed.append((take.allowed, take.remaining))
    assert allowed == [(True, 2), (True, 1), (True, 0), (False, 0), (False, 0)]
    refused, _ = gcra(tat, now, 1.0, 3)
    assert refused.retry_after == pytest.approx(1.0) and refused.reset == pytest.approx(3.0)
    later, tat = gcra(tat, now + 1.0, 1.0, 3)  # one token back after one interval
    assert later.allowed and later.remaining == 0
    full, _ = gcra(tat, now + 100, 1.0, 3)  # idle long enough: full again, nothing to keep
    assert full.allowed and full.remaining == 2 and full.reset == pytest.approx(1.0)


def test_local_buckets_keep_keys_apart_and_peek_takes_nothing():
    buckets = LocalBuckets()
    assert [buckets.take(b"a", 10.0, 2).allowed for _ in range(3)] == [True, True, False]
    assert buckets.take(b"b", 10.0, 2).allowed
    assert not buckets.peek(b"a", 10.0, 2).allowed
    assert buckets.peek(b"c", 10.0, 2).allowed and buckets.peek(b"c", 10.0, 2).remaining == 1
    assert buckets.take(b"c", 10.0, 2).remaining == 1  # peeking took nothing


def test_local_buckets_are_bounded():
    buckets = LocalBuckets(max_keys=10)
    for i in range(100):
        buckets.take(str(i).encode(), 60.0, 1)
    assert len(buckets._cells) == 10


def test_a_shared_table_is_one_quota_whichever_handle_takes(tmp_path: Path):
    path = tmp_path / "ratelimit.table"
    primary = SharedBuckets.create(path, processes=2, cells=1024)
    worker = SharedBuckets.open(path, processes=2)
    try:
        takes = [(primary if i % 2 else worker).take(b"sub:alice", 60.0, 4).allowed
                 for i in range(6)]
        assert takes == [True, True, True, True, False, False]
        assert worker.take(b"sub:bob", 60.0, 4).allowed
    finally:
        primary.close()
        worker.close()


def test_a_table_that_is_not_one_is_refused(tmp_path: Path):
    (tmp_path / "t").write_bytes(b"abc")
    with pytest.raises(ValueError, match="not a rate limit table"):
        SharedBuckets.open(tmp_path / "t", 2)


def test_a_full_neighbourhood_falls_back_to_a_divided_local_quota(tmp_path: Path, caplog):
    table = SharedBuckets.create(tmp_path / "t", processes=2, cells=8)  # one probe window
    try:
        for i in range(8):  # eight live buckets fill every cell
            assert table.take(f"k{i}".encode(), 60.0, 1).allowed
        assert [table.take(b"late", 60.0, 4).allowed for _ in range(3)] == [True, True, False]
        assert "is full around a key" in caplog.text
    finally:
        table.close()


def _hammer(path: str, start: float, results) -> None:
    table = SharedBuckets.open(Path(path), processes=4)
    while time.monotonic() < start:
        pass
    results.put(sum(table.take(b"shared-key", 3600.0, 100).allowed for _ in range(100)))
    table.close()


def test_four_processes_taking_at_once_never_get_more_than_the_quota(tmp_path: Path):
    """The lock is what makes it exact: without it, concurrent read-modify-writes would
    hand out more than 100 tokens."""
    path = tmp_path / "ratelimit.table"
    table = SharedBuckets.create(path, processes=4)
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    start = time.monotonic() + 2.0
    procs = [ctx.Process(target=_hammer, args=(str(path), start, results)) for _ in range(4)]
    for p in procs:
        p.start()
    try:
        got = [results.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(30)
        table.close()
    assert sum(got) == 100
