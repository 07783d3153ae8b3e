"""How an MLflow model's columns become Triton tensors, and back — pure decisions and numpy.

Inputs (from the signature's columns):

* every column numeric (``double``, ``float``, ``long``, ``integer``): one tensor
  ``input0`` of shape ``[-1, N]``, columns in signature order. Its datatype is
  ``FP32`` when any column is a float (the form of ODAHU's Triton example request,
  ``{"name": "input0", "shape": [1, 11], "datatype": "FP32", ...}``), else ``INT64``
  or ``INT32``; each column is cast back to its own type before the model sees it.
* otherwise: one tensor per column, named after it, shape ``[-1, 1]``, with the
  column's own datatype (strings, binary and date-times as ``BYTES``).

Outputs: one tensor per output column, shape ``[-1, 1]``, named after the signature's
output columns when their number matches what the model returns, else
``prediction`` / ``prediction_<i>``; the datatype is what the model returned on its
input example (or, without one, the signature's type).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from predictor.schema import Column

SINGLE_INPUT = "input0"

# v2 datatype -> numpy dtype (BYTES: object arrays of ``bytes``)
NUMPY_TYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": np.object_,
}
_KIND_DATATYPES = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}
_NUMERIC_KINDS = frozenset({"double", "float", "long", "integer"})
_FLOAT_KINDS = frozenset({"double", "float"})
_COLUMN_DTYPES = {"double": np.float64, "float": np.float32, "long": np.int64,
                  "integer": np.int32, "boolean": np.bool_}
_MODEL_NAME = re.compile(r"[^a-zA-Z0-9._-]+")


class TensorPlanError(ValueError):
    """The model cannot be served by Triton as it is; the message says why."""


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor: ``dims`` exclude the batch dimension."""

    name: str
    datatype: str
    dims: tuple[int, ...]

    @property
    def numpy_type(self) -> Any:
        return NUMPY_TYPES[self.datatype]

    @property
    def shape(self) -> list[int]:
        """The v2 shape, batch dimension first (``-1``: any size)."""
        return [-1, *self.dims]


@dataclass(frozen=True)
class InputLayout:
    """The tensors a client sends and how they map onto the signature's columns."""

    tensors: tuple[TensorSpec, ...]
    columns: tuple[Column, ...]
    single: bool  # one [-1, N] tensor holds every column

    @property
    def column_names(self) -> list[str]:
        return [c.name if c.name is not None else str(i) for i, c in enumerate(self.columns)]


def triton_model_name(name: str) -> str:
    """A Triton model name (letters, digits, ``.``, ``_``, ``-``) for an MLflow model name."""
    cleaned = _MODEL_NAME.sub("-", name).strip("-")
    return cleaned or "model"


def triton_model_version(version: str) -> int:
    """Triton versions are positive integers: ``"2.0"`` and ``"2"`` -> 2, anything else -> 1."""
    match = re.match(r"\s*v?(\d+)(\.0+)*\s*$", version)
    if match and int(match.group(1)) >= 1:
        return int(match.group(1))
    return 1


def plan_inputs(columns: Sequence[Column] | None) -> InputLayout:
    """The input tensors for a column-based signature; ``TensorPlanError`` without one."""
    if not columns:
        raise TensorPlanError(
            "the triton predictor needs a column-based model signature (save the MLflow "
            "model with a signature inferred from a DataFrame)")
    unsupported = [c.name for c in columns if c.kind not in _KIND_DATATYPES]
    if unsupported:
        raise TensorPlanError(
            "the triton predictor cannot map columns of array or object type to tensors: "
            + ", ".join(repr(n) for n in unsupported))
    columns = tuple(columns)
    kinds = {c.kind for c in columns}
    if kinds <= _NUMERIC_KINDS:
        if kinds & _FLOAT_KINDS:
            datatype = "FP32"
        else:
            datatype = "INT64" if "long" in kinds else "INT32"
        return InputLayout((TensorSpec(SINGLE_INPUT, datatype, (len(columns),)),), columns, True)
    names = [c.name if c.name is not None else str(i) for i, c in enumerate(columns)]
    tensors = tuple(TensorSpec(n, _KIND_DATATYPES[c.kind], (1,))
                    for n, c in zip(names, columns, strict=True))
    return InputLayout(tensors, columns, False)


def model_input(layout: InputLayout, tensors: Mapping[str, np.ndarray],
                homogeneous_dtype: Any = None, order: str = "C") -> np.ndarray | pd.DataFrame:
    """What the model is called with, from the tensors Triton passed in.

    ``homogeneous_dtype`` (the input plan's dtype when every column has the same numeric
    type): the single tensor is cast to an array of it in ``order`` memory layout, which
    is what the predictor's fast path takes; otherwise a DataFrame with one correctly
    typed column per signature column.
    """
    names = layout.column_names
    if layout.single:
        array = tensors[SINGLE_INPUT]
        if homogeneous_dtype is not None:
            return np.asarray(array, dtype=homogeneous_dtype, order=order)
        return pd.DataFrame({n: array[:, i].astype(_COLUMN_DTYPES[c.kind])
                             for i, (n, c) in enumerate(zip(names, layout.columns, strict=True))})
    data: dict[str, Any] = {}
    for name, column in zip(names, layout.columns, strict=True):
        values = np.asarray(tensors[name]).reshape(-1)
        data[name] = _column_from_tensor(column.kind, values)
    return pd.DataFrame(data)


def _column_from_tensor(kind: str, values: np.ndarray) -> Any:
    if kind in _COLUMN_DTYPES:
        return values.astype(_COLUMN_DTYPES[kind])
    if kind == "binary":
        return np.array([bytes(v) for v in values], dtype=object)
    text = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]
    if kind == "datetime":
        return pd.to_datetime(pd.Series(text, dtype=object), format="ISO8601")
    return np.array(text, dtype=object)


def prediction_columns(prediction: Any) -> list[np.ndarray]:
    """The model's answer as one 1-D array per output column."""
    if isinstance(prediction, pd.DataFrame):
        return [prediction.iloc[:, i].to_numpy() for i in range(prediction.shape[1])]
    if isinstance(prediction, pd.Series):
        return [prediction.to_numpy()]
    array = np.asarray(prediction)
    if array.ndim == 0:
        return [array.reshape(1)]
    if array.ndim == 1:
        return [array]
    array = array.reshape(array.shape[0], -1)
    return [array[:, i] for i in range(array.shape[1])]


def _output_names(width: int, outputs: Sequence[str]) -> list[str]:
    if len(outputs) == width:
        return list(outputs)
    if width == 1:
        return ["prediction"]
    return [f"prediction_{i}" for i in range(width)]


def _datatype_of(values: np.ndarray) -> str:
    kind = values.dtype.kind
    if kind in "OSUM":  # objects, strings, date-times
        return "BYTES"
    for datatype, numpy_type in NUMPY_TYPES.items():
        if numpy_type is not np.object_ and values.dtype == np.dtype(numpy_type):
            return datatype
    return "FP64"


def plan_outputs(example_prediction: Any, signature_outputs: Sequence[Column] | None
                 ) -> tuple[TensorSpec, ...]:
    """Output tensors from the model's answer on its input example (or its signature)."""
    names = [c.name for c in signature_outputs or () if c.name is not None]
    if example_prediction is not None:
        columns = prediction_columns(example_prediction)
        return tuple(TensorSpec(n, _datatype_of(v), (1,))
                     for n, v in zip(_output_names(len(columns), names), columns, strict=True))
    if signature_outputs:
        kinds = [c.kind for c in signature_outputs]
        return tuple(TensorSpec(n, _KIND_DATATYPES.get(k, "BYTES"), (1,))
                     for n, k in zip(_output_names(len(kinds), names), kinds, strict=True))
    raise TensorPlanError(
        "the triton predictor needs the model's output signature or an input example to "
        "know its outputs")


def output_tensors(prediction: Any, outputs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """The model's answer as the declared output tensors (``[batch, 1]`` each)."""
    columns = prediction_columns(prediction)
    if len(columns) != len(outputs):
        raise ValueError(f"the model returned {len(columns)} output column(s), expected "
                         f"{len(outputs)} ({', '.join(o.name for o in outputs)})")
    out = {}
    for spec, values in zip(outputs, columns, strict=True):
        if spec.datatype == "BYTES":
            array = np.array([_to_bytes(v) for v in values], dtype=object)
        else:
            array = np.asarray(values, dtype=spec.numpy_type)
        out[spec.name] = array.reshape(-1, 1)
    return out


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, pd.Timestamp | np.datetime64):
        return str(pd.Timestamp(value).isoformat()).encode()
    return str(value).encode("utf-8")


def example_request(layout: InputLayout, example_columns: Sequence[str] | None,
                    example_rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """A v2 infer body (JSON tensors) for the model's input example rows."""
    names = layout.column_names
    if example_columns is not None:
        position = {c: i for i, c in enumerate(example_columns)}
        rows = [[row[position[n]] for n in names] for row in example_rows]
    else:
        rows = [list(r) for r in example_rows]
    if layout.single:
        (spec,) = layout.tensors
        return {"inputs": [{"name": spec.name, "shape": [len(rows), len(names)],
                            "datatype": spec.datatype, "data": rows}]}
    inputs = []
    for i, spec in enumerate(layout.tensors):
        inputs.append({"name": spec.name, "shape": [len(rows), 1], "datatype": spec.datatype,
                       "data": [[_json_value(row[i])] for row in rows]})
    return {"inputs": inputs}


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
