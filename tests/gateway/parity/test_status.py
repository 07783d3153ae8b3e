"""``tests/gateway/test_status.py`` through the fast server (package docstring)."""

from tests.gateway import test_status as _suite
from tests.gateway.parity import through_fast_server
from tests.gateway.test_status import *  # noqa: F403 - the same tests and fixtures

_fast_server = through_fast_server(_suite)
