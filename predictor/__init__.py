"""The model server that runs next to a model ("odahu-ml-server" protocol over MLflow).

``python -m predictor --model-uri DIR`` serves one MLflow model; see ``__main__``.
"""

from predictor.inputs import InputError, InputPlan
from predictor.model import LoadedModel, ModelLoadError, load_model
from predictor.openapi import build_openapi
from predictor.schema import Column
from predictor.server import make_app, serve

__all__ = [
    "Column",
    "InputError",
    "InputPlan",
    "LoadedModel",
    "ModelLoadError",
    "build_openapi",
    "load_model",
    "make_app",
    "serve",
]
