"""The model server that runs next to a model ("odahu-ml-server" protocol over MLflow).

``python -m predictor --model-uri DIR`` serves one MLflow model; see ``__main__``.
``python -m predictor.triton.server`` serves one with NVIDIA Triton (:mod:`predictor.triton`).

The names below load on first use: the control plane imports a few light modules of this
package (``predictor.triton.cleanup``) and must not pull MLflow, pandas and scikit-learn
in with them — those come with the ``mlgate[predictor]`` extra, which only replicas need.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Column": "predictor.schema",
    "InputError": "predictor.inputs",
    "InputPlan": "predictor.inputs",
    "LoadedModel": "predictor.model",
    "ModelLoadError": "predictor.model",
    "build_openapi": "predictor.openapi",
    "load_model": "predictor.model",
    "make_app": "predictor.server",
    "serve": "predictor.server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'predictor' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
