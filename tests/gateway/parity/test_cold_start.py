"""``tests/gateway/test_cold_start.py`` through the fast server (package docstring)."""

from tests.gateway import test_cold_start as _suite
from tests.gateway.parity import through_fast_server
from tests.gateway.test_cold_start import *  # noqa: F403 - the same tests and fixtures

_fast_server = through_fast_server(_suite)
