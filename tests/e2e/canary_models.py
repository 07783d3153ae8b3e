"""Canaries that misbehave on purpose: real MLflow pyfunc models around the demo wine-v1.

Saved as an MLflow "model from code" (this file is the model's code; ``model_config`` says
which canary it is), so the predictor loads them like any other model:

- ``noisy``: wine-v1's prediction plus Gaussian noise (sd 2): a clearly higher MAE;
- ``slow``: wine-v1's prediction after a 50 ms pause: the same quality, slower;
- ``broken``: raises on every call, so the predictor answers 500.

``save(kind, base, out)`` writes one (``tests/e2e/test_rollouts.py`` does it once per run).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel

KINDS = ("noisy", "slow", "broken")
NOISE_SD = 2.0
PAUSE = 0.05


class Canary(PythonModel):
    def load_context(self, context) -> None:
        self.base = mlflow.pyfunc.load_model(context.artifacts["base"])
        self.kind = context.model_config["kind"]
        self.rng = np.random.default_rng(7)

    def predict(self, context, model_input, params=None):
        if self.kind == "broken":
            raise RuntimeError("this canary is broken on purpose")
        if self.kind == "slow":
            time.sleep(PAUSE)
        predicted = np.asarray(self.base.predict(model_input), dtype=float)
        if self.kind == "noisy":
            predicted = predicted + self.rng.normal(0.0, NOISE_SD, predicted.shape)
        return predicted


mlflow.models.set_model(Canary())


def save(kind: str, base: Path, out: Path) -> Path:
    """Save the ``kind`` canary around the MLflow model at ``base`` as ``out`` (model
    ``wine``, version ``3.0-<kind>``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown canary {kind!r}; one of {', '.join(KINDS)}")
    signature = mlflow.models.Model.load(str(base)).signature
    with warnings.catch_warnings():  # no type hints, no input example: on purpose
        warnings.simplefilter("ignore", UserWarning)
        _save(kind, base, out, signature)
    return out


def _save(kind: str, base: Path, out: Path, signature: object) -> None:
    mlflow.pyfunc.save_model(
        str(out), python_model=str(Path(__file__).resolve()), artifacts={"base": str(base)},
        model_config={"kind": kind}, signature=signature,
        pip_requirements=[f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}"],
        metadata={"model_name": "wine", "model_version": f"3.0-{kind}"})
