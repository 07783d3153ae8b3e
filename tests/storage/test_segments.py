from datetime import UTC, datetime

import orjson
import pytest

from storage.segments import (
    Partition,
    SegmentName,
    check_lines,
    hour_of,
    new_run_id,
    object_number,
    parse_segment_name,
)

PART = Partition("feedback", "wine", "1.0", "2026112509")


def test_name_round_trips_and_gives_the_seed_key():
    name = SegmentName(PART, object_number("000123456789", 7))
    assert name.filename == "2026112509~feedback~wine~1.0~000123456789000007.seg"
    assert parse_segment_name(name.filename) == name
    assert name.object_key("logs/") == (
        "logs/feedback/wine/1.0/year=2026/month=11/day=25/2026112509_000123456789000007.json")


@pytest.mark.parametrize("filename", [
    ".lock", "2026112509~feedback~wine~1.0~12.tmp", "2026112509~feedback~wine~1.0.seg",
    "2026112509~nope~wine~1.0~12.seg", "2026112509~feedback~..~1.0~12.seg",
    "2026112509~feedback~wine~1.0~1a.seg", "20261125~feedback~wine~1.0~12.seg",
])
def test_other_files_are_not_segments(filename):
    assert parse_segment_name(filename) is None


def test_run_ids_are_fixed_width_digits():
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50 and all(len(i) == 12 and i.isdigit() for i in ids)


def test_hour_is_utc():
    from datetime import timedelta, timezone
    local = datetime(2026, 11, 25, 1, 30, tzinfo=timezone(timedelta(hours=3)))
    assert hour_of(local) == "2026112422"
    assert hour_of(datetime(2026, 1, 2, 3, 4)) == "2026010203"


def test_unsafe_partition_is_refused():
    with pytest.raises(ValueError):
        Partition("feedback", "../etc", "1", "2026112509")
    with pytest.raises(ValueError):
        Partition("feedback", "wine", "1", "2026-11-25")
    assert PART.when == datetime(2026, 11, 25, 9, tzinfo=UTC)


GOOD = [orjson.dumps({"request_id": f"r{i}"}) + b"\n" for i in range(3)]


def test_complete_lines_pass_unchanged():
    checked = check_lines(b"".join(GOOD), validate=True)
    assert (checked.data, checked.records, checked.torn) == (b"".join(GOOD), 3, 0)


@pytest.mark.parametrize("validate", [True, False])
def test_torn_last_line_is_cut_and_counted(validate):
    checked = check_lines(b"".join(GOOD) + b'{"request_id": "r3", "pay', validate=validate)
    assert (checked.data, checked.records, checked.torn) == (b"".join(GOOD), 3, 1)


def test_garbage_lines_are_skipped_when_validating():
    data = GOOD[0] + b"\x00\x00\x00\x00\n" + b'{"cut": \n' + b"[1]\n" + GOOD[1] + b"\n"
    checked = check_lines(data, validate=True)
    assert checked.data == GOOD[0] + GOOD[1]
    assert (checked.records, checked.torn) == (2, 3)


def test_trailing_zeros_from_power_loss_count_as_torn():
    checked = check_lines(GOOD[0] + b"\x00" * 100, validate=True)
    assert (checked.data, checked.torn) == (GOOD[0], 1)


def test_empty_segment():
    assert check_lines(b"", validate=True).records == 0
