"""``tests/gateway/test_proxy.py``, served by the fast server (see the package docstring)."""

from tests.gateway import test_proxy as _suite
from tests.gateway.test_proxy import *  # noqa: F403 - the same tests and fixtures
from tests.gateway.parity import through_fast_server

_fast_server = through_fast_server(_suite)
