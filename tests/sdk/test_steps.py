"""The SDK's pure decisions: when to retry, what an error answer becomes."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from mlgate import errors
from mlgate._steps import RetryPolicy, response_message, retry_after_seconds, retry_delay

POLICY = RetryPolicy(retries=3, base=0.5, max_delay=30.0)


def test_retry_after_is_seconds_or_an_http_date():
    now = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(" 0.5 ") == 0.5
    assert retry_after_seconds("Sat, 05 Dec 2026 12:00:07 GMT", now) == 7.0
    assert retry_after_seconds("Sat, 05 Dec 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("-3") == 0.0


@pytest.mark.parametrize(("status", "header", "expected"), [
    (503, "2", 2.0),          # the server says when
    (429, "1", 1.0),
    (503, "600", 30.0),       # capped
    (503, None, None),        # no Retry-After: not the server's word that nothing happened
    (500, "2", None),         # only 429 and 503
    (200, "2", None),
])
def test_answers_are_retried_only_when_the_server_says_so(status, header, expected):
    assert retry_delay(POLICY, 0, status, header) == expected


def test_connections_that_failed_back_off_exponentially_with_jitter():
    assert retry_delay(POLICY, 0, None, None, rand=1.0) == 0.5
    assert retry_delay(POLICY, 2, None, None, rand=1.0) == 2.0
    assert retry_delay(POLICY, 2, None, None, rand=0.0) == 1.0
    assert retry_delay(RetryPolicy(retries=10, base=1, max_delay=5), 9, None, None, 1.0) == 5


def test_retries_stop_after_the_policy_allows():
    assert retry_delay(POLICY, 3, 503, "1") is None
    assert retry_delay(POLICY, 3, None, None) is None
    assert retry_delay(RetryPolicy(retries=0), 0, 503, "1") is None


def test_a_bad_policy_is_refused():
    with pytest.raises(ValueError):
        RetryPolicy(retries=-1)
    with pytest.raises(ValueError):
        RetryPolicy(base=2, max_delay=1)


def _answer(status: int, **kw) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "http://x/api"), **kw)


def test_the_servers_message_is_the_errors_message():
    assert response_message(_answer(404, json={"message": 'entity "x" is not found'})) == (
        'entity "x" is not found', {"message": 'entity "x" is not found'})
    assert response_message(_answer(502, text="Bad Gateway\nmore"))[0] == "Bad Gateway"
    assert response_message(_answer(500))[0] == "GET http://x/api answered 500"


@pytest.mark.parametrize(("status", "cls"), [
    (400, errors.Invalid), (422, errors.Invalid), (401, errors.Unauthorized),
    (403, errors.Forbidden), (404, errors.NotFound), (409, errors.Conflict),
    (429, errors.TooManyRequests), (503, errors.Unavailable), (500, errors.ServerError),
    (504, errors.ServerError), (418, errors.ApiError),
])
def test_each_status_has_its_exception(status, cls):
    exc = errors.error_for(status, "what went wrong", {"message": "what went wrong"})
    assert type(exc) is cls and exc.status == status
    assert str(exc) == f"what went wrong (HTTP {status})"
    assert isinstance(exc, errors.MlgateError)


def test_wait_timeout_is_a_timeout_error():
    assert issubclass(errors.WaitTimeout, TimeoutError)
    failed = errors.DeploymentFailed("wine", "model cannot load")
    assert str(failed) == "model deployment wine failed: model cannot load"
    assert failed.reason == "model cannot load"
