"""The gateway suites again, served by the fast server (:mod:`gateway.server`).

Each module here imports every test and fixture of one existing module and, for the
whole module, swaps that module's ``TestServer`` for :class:`FastTestServer`, which
listens with :class:`gateway.GatewayRunner` (the runner ``mlgate up`` uses) instead of
aiohttp's ``AppRunner``. The tests themselves are unchanged: the same assertions hold
whichever server answers, which is the promise of one port and one set of behaviours.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from aiohttp import test_utils

from gateway import GatewayRunner

SERVED: list[Any] = []
"""The fast servers the tests of the current module listened with."""


class FastTestServer(test_utils.TestServer):
    """aiohttp's ``TestServer`` with the gateway's runner."""

    async def _make_runner(self, **kwargs: Any) -> GatewayRunner:
        return GatewayRunner(self.app, **kwargs)

    async def start_server(self, **kwargs: Any) -> None:
        await super().start_server(**kwargs)
        SERVED.append(self.runner.server)


def through_fast_server(module: ModuleType) -> Any:
    """An autouse, module-scoped fixture that serves ``module``'s apps with the fast server."""

    @pytest.fixture(scope="module", autouse=True)
    def fast_server() -> Iterator[None]:
        SERVED.clear()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(module, "TestServer", FastTestServer)
            yield
        # the suite really went through the fast server's data plane
        assert sum(getattr(server, "served", 0) for server in SERVED) > 0

    return fast_server
