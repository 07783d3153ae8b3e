"""``tests/gateway/test_catalog.py`` through the fast server (package docstring)."""

from tests.gateway import test_catalog as _suite
from tests.gateway.parity import through_fast_server
from tests.gateway.test_catalog import *  # noqa: F403 - the same tests and fixtures

_fast_server = through_fast_server(_suite)
