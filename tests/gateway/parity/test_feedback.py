"""``tests/feedback/test_feedback.py`` through the fast server (package docstring)."""

from tests.feedback import test_feedback as _suite
from tests.feedback.test_feedback import *  # noqa: F403 - the same tests and fixtures
from tests.gateway.parity import through_fast_server

_fast_server = through_fast_server(_suite)
