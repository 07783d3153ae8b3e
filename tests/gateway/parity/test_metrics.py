"""``tests/gateway/test_metrics.py``, served by the fast server (see the package docstring)."""

from tests.gateway import test_metrics as _suite
from tests.gateway.test_metrics import *  # noqa: F403 - the same tests and fixtures
from tests.gateway.parity import through_fast_server

_fast_server = through_fast_server(_suite)
