"""``tests/gateway/test_ratelimit.py`` through the fast server (package docstring)."""

from tests.gateway import test_ratelimit as _suite
from tests.gateway.parity import through_fast_server
from tests.gateway.test_ratelimit import *  # noqa: F403 - the same tests and fixtures

_fast_server = through_fast_server(_suite)
