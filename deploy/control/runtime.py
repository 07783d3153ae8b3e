"""What the reconciler needs from a runtime (local processes today, Kubernetes later).

A runtime is told *what should run* and reports *what runs*; it never reads the
store. ``apply`` and ``delete`` only record the wish and return at once (they
are idempotent: calling them every reconcile pass is the normal case); the
runtime works in the background and calls ``on_change`` whenever something it
reports may have changed, and the reconciler then reads ``observe``.

Errors inside a runtime are of two kinds, as in kopf: :class:`RetryLater`
(a replica crashed, a health check timed out — try again after a delay) and
:class:`GiveUp` (the model cannot load, the image cannot run here — retrying
the same spec cannot help; the deployment is Failed with the reason until its
spec changes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from deploy.control.deployments import ModelDeployment


def backoff(failures: int, base: float, cap: float) -> float:
    """Seconds to wait before restart number ``failures`` (1, 2, ...): doubling, capped."""
    return min(cap, base * 2 ** max(0, failures - 1))


class RuntimeProblem(Exception):
    """Base of the runtime errors; the message is the reason users see in the status."""


class RetryLater(RuntimeProblem):
    """Temporary: the runtime tries again after ``delay`` seconds."""

    def __init__(self, message: str, delay: float = 1.0) -> None:
        super().__init__(message)
        self.delay = delay


class GiveUp(RuntimeProblem):
    """Permanent for this spec: the deployment is Failed until the spec changes."""


@dataclass(frozen=True)
class Observed:
    """One deployment as the runtime sees it."""

    generation: int
    """The spec generation the runtime is working on (the last one applied)."""
    replicas: int = 0
    """Replicas that exist in any phase (starting, ready, stopping), any generation."""
    available: int = 0
    """Ready replicas of ``generation``."""
    endpoints: tuple[tuple[str, int], ...] = ()
    """Where traffic may go now (ready replicas, possibly of the previous generation)."""
    model_name: str = ""
    model_version: str = ""
    documents: tuple[tuple[str, bytes], ...] = ()
    """``(path, JSON body)`` the gateway answers itself (a Triton model's ``/api/model/info``)."""
    failure: str = ""
    """Why the runtime gave up on ``generation`` (a :class:`GiveUp` message)."""
    problem: str = ""
    """The last temporary problem (a :class:`RetryLater` message), while not all are ready."""
    verified: bool = False
    """The platform itself reports ``generation`` as rolled out (Kubernetes), so it is Ready
    even at zero replicas without having been seen Ready by this process."""


class Runtime(Protocol):
    """The runtime interface: desired state in, observed state out."""

    autoscales: bool
    """True when the platform owns replica counts (Kubernetes: HPA/KEDA): the reconciler
    runs no autoscaler for it and ``apply`` ignores ``replicas``."""

    async def start(self, on_change: Callable[[], None]) -> None:
        """Begin background work; ``on_change`` is called when ``observe`` may differ."""

    def apply(self, deployment: ModelDeployment, replicas: int) -> None:
        """Run ``deployment`` (its ``generation``) with ``replicas`` replicas."""

    def delete(self, deployment_id: str) -> None:
        """Stop every replica of the deployment; ``observe`` answers None once all are gone."""

    def observe(self, deployment_id: str) -> Observed | None:
        """The deployment as it runs, or None if the runtime holds nothing for it."""

    def known(self) -> set[str]:
        """Every deployment id the runtime holds something for."""

    async def close(self) -> None:
        """Stop everything and wait until it has stopped."""
