"""``tests/gateway/test_auth_every_route.py`` through the fast server (package docstring)."""

from tests.gateway import test_auth_every_route as _suite
from tests.gateway.parity import through_fast_server
from tests.gateway.test_auth_every_route import *  # noqa: F403 - the same tests and fixtures

_fast_server = through_fast_server(_suite)
