"""``tests/gateway/test_admission.py`` through the fast server (package docstring)."""

from tests.gateway import test_admission as _suite
from tests.gateway.parity import through_fast_server
from tests.gateway.test_admission import *  # noqa: F403 - the same tests and fixtures

_fast_server = through_fast_server(_suite)
