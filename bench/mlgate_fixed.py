"""``mlgate up`` whose replicas are a server that is already running (the benchmark's upstream).

    .venv/bin/python bench/mlgate_fixed.py --upstream 127.0.0.1:9001 -- up --port 0 ... -f dep.yaml

Exactly the ``mlgate up`` a user runs (the same CLI, filter chain, storage writer,
reconciler, autoscaler and workers), except the runtime: instead of starting
predictor processes, every deployment is "running" as one replica at
``--upstream``. So the benchmark measures the gateway in front of a server whose
cost is known and small (``bench/upstream.py``), not a model.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy import cli
from deploy.control.deployments import ModelDeployment
from deploy.control.runtime import Observed
from deploy.serve import up


class FixedRuntime:
    """The ``Runtime`` protocol over one address that serves every deployment."""

    autoscales = False  # the reconciler's autoscaler runs, as with the local runtime

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self._wanted: dict[str, tuple[int, int]] = {}  # id -> (generation, replicas)
        self._on_change: Callable[[], None] = lambda: None

    async def start(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change

    def apply(self, deployment: ModelDeployment, replicas: int) -> None:
        wanted = (deployment.generation, max(1, replicas))
        if self._wanted.get(deployment.id) != wanted:
            self._wanted[deployment.id] = wanted
            self._on_change()

    def delete(self, deployment_id: str) -> None:
        if self._wanted.pop(deployment_id, None) is not None:
            self._on_change()

    def observe(self, deployment_id: str) -> Observed | None:
        wanted = self._wanted.get(deployment_id)
        if wanted is None:
            return None
        generation, _replicas = wanted
        return Observed(generation=generation, replicas=1, available=1,
                        endpoints=(self.address,), model_name="fast", model_version="1")

    def known(self) -> set[str]:
        return set(self._wanted)

    async def close(self) -> None:
        self._wanted.clear()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the running server")
    parser.add_argument("mlgate_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    runtime = FixedRuntime((host, int(port)))
    up.build_runtime = lambda _settings: runtime  # the name up.run() looks up
    rest = args.mlgate_args[1:] if args.mlgate_args[:1] == ["--"] else args.mlgate_args
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main())
