"""What the canary judge reads and answers: a window's data per variant, and verdicts.

numpy is imported where samples are made (``VariantData``), not at import: the rollout state
machine (``rollout.py``) uses the verdicts' names and runs where the ``analysis`` extra
(numpy, scipy) is not installed; only judging needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

PASS = "pass"
FAIL = "fail"
INCONCLUSIVE = "inconclusive"
VERDICTS = (PASS, FAIL, INCONCLUSIVE)


def _samples(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    import numpy as np

    array = np.array(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{what} must be finite numbers of at least 0")
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class VariantData:
    """What one variant did in the window: requests, 5xx answers among them, latencies
    (seconds) and per-prediction errors of its labelled predictions (absolute error for a
    regression, 1 wrong / 0 right for a classification). Sequences are copied into read-only
    float arrays; NaN, infinite or negative values are refused."""

    requests: int = 0
    errors: int = 0
    latencies: np.ndarray = field(default_factory=lambda: _samples((), "latencies"))
    quality: np.ndarray = field(default_factory=lambda: _samples((), "quality"))

    def __post_init__(self) -> None:
        if not 0 <= self.errors <= self.requests:
            raise ValueError(
                f"need 0 <= errors <= requests, got {self.errors} errors of "
                f"{self.requests} requests"
            )
        object.__setattr__(self, "latencies", _samples(self.latencies, "latencies"))
        object.__setattr__(self, "quality", _samples(self.quality, "quality samples"))


@dataclass(frozen=True)
class WindowData:
    canary: VariantData
    stable: VariantData


@dataclass(frozen=True)
class MetricVerdict:
    """One metric's verdict; figures are ``None`` when the variant had no data at all."""

    name: str
    verdict: str
    canary: float | None
    stable: float | None
    bound: float | None
    p_value: float | None
    effect: float | None
    samples: tuple[int, int]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "canary": self.canary,
            "stable": self.stable,
            "bound": self.bound,
            "pValue": self.p_value,
            "effect": self.effect,
            "samples": {"canary": self.samples[0], "stable": self.samples[1]},
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Judgement:
    verdict: str
    metrics: tuple[MetricVerdict, ...]

    def with_verdict(self, verdict: str) -> tuple[MetricVerdict, ...]:
        return tuple(m for m in self.metrics if m.verdict == verdict)

    def summary(self) -> str:
        """The reasons that decided the verdict, one metric after another."""
        deciding = self.with_verdict(self.verdict) or self.metrics
        return "; ".join(m.reason for m in deciding)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "metrics": [m.to_dict() for m in self.metrics]}
