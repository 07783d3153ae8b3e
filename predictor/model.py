"""Load an MLflow model once, and prepare everything a request will need.

At load, not per request: the input plan (column order, types), the output column
names, the input example, the OpenAPI document, and the choice of how to call the
model (:mod:`predictor.strategy`).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from predictor.inputs import InputError, InputPlan
from predictor.openapi import build_openapi
from predictor.payloads import invocations_body, prediction_table
from predictor.schema import columns_from_schema
from predictor.strategy import Batch, PredictFn, choose_strategy
from predictor.uri import local_model_path

log = logging.getLogger("predictor")


class ModelLoadError(Exception):
    """The model cannot be served; ``str(err)`` is the one-line reason."""


@dataclass
class LoadedModel:
    """A model ready to serve: call :meth:`predict` with the output of ``plan.convert``."""

    name: str
    version: str
    path: Path
    plan: InputPlan
    outputs: tuple[str, ...]
    strategy: str
    predict: PredictFn
    openapi: dict[str, Any] = field(repr=False)
    example: tuple[list[str] | None, list] | None = field(default=None, repr=False)


def load_model(
    uri: str,
    *,
    name: str | None = None,
    version: str | None = None,
    base: Path | None = None,
) -> LoadedModel:
    """Load the MLflow model at ``uri`` and prepare everything requests will need.

    ``name``/``version`` win over the MLmodel ``metadata`` (``model_name``,
    ``model_version``), which win over the directory name and ``"1.0"``.
    Raises :class:`ModelLoadError` with a one-line reason.
    """
    path = _fetch(uri, base)
    pyfunc = _load_pyfunc(path)
    meta = pyfunc.metadata
    signature = meta.signature
    input_schema = signature.inputs if signature is not None else None
    columns = columns_from_schema(input_schema)
    tensor_dtype = None
    if columns is None and input_schema is not None and len(input_schema.inputs) == 1:
        tensor_dtype = input_schema.numpy_types()[0]
    plan = InputPlan(columns, tensor_dtype=tensor_dtype)
    output_columns = columns_from_schema(signature.outputs) if signature is not None else None
    outputs = tuple(c.name for c in output_columns or () if c.name is not None)

    example = _read_example(meta, path)
    probe, reference = _probe(pyfunc, plan, example)
    strategy, predict = choose_strategy(pyfunc, plan, probe, reference)

    metadata = meta.metadata or {}
    model_name = str(name or metadata.get("model_name") or path.name)
    model_version = str(version or metadata.get("model_version") or "1.0")

    example_prediction: list | None = None
    example_predictions: Any = None
    prediction_columns = list(outputs) or ["prediction"]
    if example is not None and probe is not None:
        try:
            output = predict(probe)
            example_prediction, prediction_columns = prediction_table(output, outputs)
            example_predictions = orjson.loads(invocations_body(output))["predictions"]
        except Exception as err:  # the document is still useful without an output example
            log.warning("the model cannot predict its own input example: %s", err)

    document = build_openapi(
        model_name=model_name,
        model_version=model_version,
        inputs=columns,
        outputs=output_columns,
        example_columns=example[0] if example else None,
        example_rows=example[1] if example else None,
        example_prediction=example_prediction,
        prediction_columns=prediction_columns,
        example_predictions=example_predictions,
    )
    return LoadedModel(
        name=model_name,
        version=model_version,
        path=path,
        plan=plan,
        outputs=outputs,
        strategy=strategy,
        predict=predict,
        openapi=document,
        example=(example[0], example[1]) if example else None,
    )


# -- loading ---------------------------------------------------------------------------


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "message", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _fetch(uri: str, base: Path | None) -> Path:
    path = local_model_path(uri, base)
    if path is None:
        try:
            import mlflow.artifacts

            path = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
        except Exception as err:
            raise ModelLoadError(f"cannot download: {_first_line(err)}") from err
    if not path.exists():
        raise ModelLoadError(f"{path} does not exist")
    if not (path / "MLmodel").is_file():
        raise ModelLoadError(f"{path} is not an MLflow model (no MLmodel file)")
    return path


def _load_pyfunc(path: Path) -> Any:
    try:
        import mlflow.pyfunc

        return mlflow.pyfunc.load_model(str(path))
    except Exception as err:
        raise ModelLoadError(_first_line(err)) from err


def _wire_value(value: Any) -> Any:
    """A value of the input example as a client would send it in JSON."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _read_example(meta: Any, path: Path) -> tuple[list[str] | None, list, Any] | None:
    """``(columns, rows, original)`` of the model's input example, or ``None``."""
    try:
        example = meta.load_input_example(str(path))
    except Exception as err:
        log.warning("ignoring the model's input example: %s", _first_line(err))
        return None
    if isinstance(example, dict):
        try:
            example = pd.DataFrame(example)
        except (TypeError, ValueError):
            return None
    if isinstance(example, pd.DataFrame) and len(example):
        frame = example.astype(object).where(example.notna(), None)
        rows = [[_wire_value(v) for v in row] for row in frame.to_numpy().tolist()]
        return [str(c) for c in example.columns], rows, example
    if isinstance(example, np.ndarray) and example.size:
        return None, example.tolist(), example
    return None


def _probe(
    pyfunc: Any, plan: InputPlan, example: tuple[list[str] | None, list, Any] | None
) -> tuple[Batch | None, Any]:
    """An input converted by the plan, and pyfunc's prediction on the same data."""
    probe: Batch | None = None
    original: Any = None
    if example is not None:
        columns, rows, original = example
        try:
            probe = plan.convert(columns, rows)
        except InputError as err:
            log.warning("the model's input example does not fit its signature: %s", err)
            return None, None
    elif plan.dtype is not None:
        probe = np.zeros((1, plan.width), dtype=plan.dtype)
        original = plan.frame(probe)
    if probe is None:
        return None, None
    try:
        return probe, pyfunc.predict(original)
    except Exception as err:
        log.warning("pyfunc cannot predict the probe input: %s", _first_line(err))
        return probe, None
