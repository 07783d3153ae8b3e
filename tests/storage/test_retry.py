import pytest

from storage.backends.errors import is_retryable_status
from storage.retry import backoff_delay


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half():
    assert [backoff_delay(a, 0.1, 1.0, rand=1.0) for a in range(6)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert backoff_delay(3, 0.1, 1.0, rand=0.0) == pytest.approx(0.4)
    assert backoff_delay(10_000, 0.1, 30.0, rand=0.5) == pytest.approx(22.5)


def test_random_delays_stay_in_bounds():
    for attempt in range(20):
        ceiling = min(5.0, 0.2 * 2**attempt)
        assert ceiling / 2 <= backoff_delay(attempt, 0.2, 5.0) <= ceiling


@pytest.mark.parametrize(("status", "code", "retry"), [
    (500, "", True), (503, "", True), (429, "", True), (408, "", True), (None, "", True),
    (400, "SlowDown", True), (403, "AccessDenied", False), (404, "NoSuchBucket", False),
    (400, "", False),
])
def test_which_failures_are_retryable(status, code, retry):
    assert is_retryable_status(status, code) is retry
