"""``tests/gateway/test_auth_filters.py`` through the fast server (package docstring)."""

from tests.gateway import test_auth_filters as _suite
from tests.gateway.parity import through_fast_server
from tests.gateway.test_auth_filters import *  # noqa: F403 - the same tests and fixtures

_fast_server = through_fast_server(_suite)
