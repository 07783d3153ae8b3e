from datetime import UTC, datetime

import pytest

from storage import UnsafeSegmentError, is_safe_segment, object_key, partition_prefix

WHEN = datetime(2019, 7, 24, 14, 5, 9, tzinfo=UTC)


def test_seed_layout():
    key = object_key("", "request_response", "income", "1.1", WHEN, 4)
    assert key == "request_response/income/1.1/year=2019/month=07/day=24/2019072414_4.json"


def test_prefix_is_joined_without_double_slashes():
    assert partition_prefix("/logs/prod/", "feedback", "wine", "1.0", WHEN) == (
        "logs/prod/feedback/wine/1.0/year=2019/month=07/day=24/")


@pytest.mark.parametrize("value", ["wine", "1.0", "test-e2e-wine", "v_2", "A.b-c_9"])
def test_safe_segments(value):
    assert is_safe_segment(value)


@pytest.mark.parametrize("value", [
    "", ".", "..", "../etc", "a/b", "a\\b", "-lead", ".hidden", "a..b", "a b", "a\nb", "ü",
    "x" * 129, "a\x00",
])
def test_unsafe_segments_are_refused(value):
    assert not is_safe_segment(value)
    with pytest.raises(UnsafeSegmentError):
        partition_prefix("", "feedback", value, "1.0", WHEN)
    with pytest.raises(UnsafeSegmentError):
        partition_prefix("", "feedback", "wine", value, WHEN)
