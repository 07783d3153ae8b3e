"""``tests/gateway/test_abuse.py`` through the fast server (package docstring)."""

from tests.gateway import test_abuse as _suite
from tests.gateway.parity import through_fast_server
from tests.gateway.test_abuse import *  # noqa: F403 - the same tests and fixtures

_fast_server = through_fast_server(_suite)
