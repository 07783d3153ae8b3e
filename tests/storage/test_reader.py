from datetime import UTC, datetime

import pytest

from storage import RecordQuery, parse_bound
from storage.reader import object_hour


def test_prefix_narrows_by_kind_model_and_version():
    assert RecordQuery("feedback").key_prefix("") == "feedback/"
    assert RecordQuery("feedback", "wine").key_prefix("/logs/") == "logs/feedback/wine/"
    assert RecordQuery("request_response", "wine", "1.0").key_prefix("p") == (
        "p/request_response/wine/1.0/")


@pytest.mark.parametrize("kw", [dict(kind="nope"), dict(kind="feedback", model_name="../x"),
                                dict(kind="feedback", model_version="1.0")])
def test_bad_queries_are_refused(kw):
    with pytest.raises(ValueError):
        RecordQuery(**kw)


def test_parse_bound():
    assert parse_bound("2026-11-01") == datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_bound("2026-11-01T09") == datetime(2026, 11, 1, 9, tzinfo=UTC)
    assert parse_bound("2026-11-01T09:30") == datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="2026-13"):
        parse_bound("2026-13")


def test_hours_and_times_in_range():
    q = RecordQuery("feedback", since=parse_bound("2026-11-01T09:30"),
                    until=parse_bound("2026-11-01T11"))
    hour = object_hour("feedback/wine/1.0/year=2026/month=11/day=01/2026110109_123.json")
    assert hour == datetime(2026, 11, 1, 9, tzinfo=UTC)
    assert q.wants_hour(hour)  # 09:00-10:00 overlaps 09:30
    assert not q.wants_hour(datetime(2026, 11, 1, 8, tzinfo=UTC))
    assert q.wants_hour(datetime(2026, 11, 1, 10, tzinfo=UTC))
    assert not q.wants_hour(datetime(2026, 11, 1, 11, tzinfo=UTC))
    assert not q.wants_time(datetime(2026, 11, 1, 9, 29, 59, tzinfo=UTC))
    assert q.wants_time(datetime(2026, 11, 1, 9, 30, tzinfo=UTC))
    assert object_hour("feedback/wine/1.0/readme.txt") is None
