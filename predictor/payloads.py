"""Request bodies in, response bodies out: the wire formats, without sockets.

Two protocols share one model:

* odahu-ml-server ``/api/model/invoke``: ``{"columns": [...], "data": [[...], ...]}``
  in, ``{"prediction": [...], "columns": [...]}`` out;
* MLflow's scoring protocol ``/invocations``: ``dataframe_split``,
  ``dataframe_records``, ``instances`` or ``inputs`` (or a CSV body) in,
  ``{"predictions": [...]}`` out, shaped as ``mlflow models serve`` shapes it.

Parsers return ``(columns, rows)`` for :meth:`predictor.inputs.InputPlan.convert`;
``columns`` is ``None`` when the rows are in signature order.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd

from predictor.inputs import InputError

MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

Table = tuple[list[str] | None, list]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def parse_json(body: bytes) -> Any:
    """Decode a JSON body, refusing anything that is not JSON."""
    if not body:
        raise InputError("request body is empty; expected JSON")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise InputError(f"request body is not valid JSON: {err}") from None


def invoke_input(payload: Any) -> Table:
    """``(columns, rows)`` of an odahu ``/api/model/invoke`` body."""
    if type(payload) is not dict:
        raise InputError(
            'request body must be a JSON object {"columns": [...], "data": [[...]]}, '
            f"got {_json_type(payload)}"
        )
    if "data" not in payload:
        raise InputError('request body has no "data" (a list of rows)')
    return payload.get("columns"), payload["data"]


def invocations_input(payload: Any) -> Table:
    """``(columns, rows)`` of an MLflow ``/invocations`` JSON body."""
    if type(payload) is not dict:
        raise InputError(
            f"The input must be a JSON dictionary with exactly one of the input fields "
            f"{list(MLFLOW_FORMATS)}. Received {_json_type(payload)}."
        )
    formats = [key for key in MLFLOW_FORMATS if key in payload]
    if len(formats) != 1:
        raise InputError(
            f"The input must be a JSON dictionary with exactly one of the input fields "
            f"{list(MLFLOW_FORMATS)}. Received dictionary with input fields: {list(payload)}."
        )
    kind = formats[0]
    value = payload[kind]
    if kind == "dataframe_split":
        return _split(value)
    if kind == "dataframe_records":
        if type(value) is not list:
            raise InputError(
                f"Dataframe records format must be a list of records. Got {_json_type(value)}."
            )
        return _records(value)
    return _tf_serving(kind, value)


def csv_input(body: bytes) -> Table:
    """``(columns, rows)`` of a CSV body with a header line (MLflow's ``text/csv``)."""
    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as err:
        raise InputError(f"request body is not a CSV table with a header: {err}") from None
    frame = frame.astype(object).where(frame.notna(), None)
    return [str(c) for c in frame.columns], frame.to_numpy().tolist()


def _split(value: Any) -> Table:
    if type(value) is not dict:
        raise InputError(f"Dataframe split format must be a dictionary. Got {_json_type(value)}.")
    extra = set(value) - {"columns", "data", "index"}
    if "data" not in value or extra:
        raise InputError(
            "Dataframe split format must have 'data' field and optionally 'columns' "
            f"and 'index' fields. Got {sorted(value)}."
        )
    columns, rows = value.get("columns"), value["data"]
    if (
        type(columns) is list
        and len(columns) == 1
        and type(rows) is list
        and all(type(r) is not list for r in rows)
    ):
        rows = [[r] for r in rows]  # one column given as a flat list
    return columns, rows


def _records(records: list) -> Table:
    if not records:
        return None, []
    first = records[0]
    if type(first) is not dict:
        raise InputError(f"each record must be a JSON object; record 0 is {_json_type(first)}")
    columns = list(first)
    width = len(columns)
    rows = []
    for i, record in enumerate(records):
        if type(record) is not dict:
            raise InputError(
                f"each record must be a JSON object; record {i} is {_json_type(record)}"
            )
        try:
            rows.append([record[c] for c in columns])
        except KeyError as err:
            raise InputError(f'record {i} has no "{err.args[0]}"') from None
        if len(record) != width:
            extra = [k for k in record if k not in first]
            raise InputError(f"record {i} has columns record 0 lacks: {extra}")
    return columns, rows


def _tf_serving(kind: str, value: Any) -> Table:
    if type(value) is dict:
        return _columnar(kind, value)
    if type(value) is not list:
        raise InputError(f'"{kind}" must be a list of rows or records, or an object of columns')
    if value and all(type(v) is dict for v in value):
        return _records(value)
    return None, value


def _columnar(kind: str, value: dict) -> Table:
    columns = list(value)
    lists = [type(v) is list for v in value.values()]
    if not any(lists):
        return columns, [list(value.values())]
    if not all(lists):
        raise InputError(f'"{kind}": every column must be a list of values, or none of them')
    lengths = {len(v) for v in value.values()}
    if len(lengths) != 1:
        raise InputError("The length of values for each input/column name are not the same")
    return columns, [list(row) for row in zip(*value.values(), strict=True)]


# -- responses ---------------------------------------------------------------------


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def dumps(value: Any) -> bytes:
    """JSON bytes of anything a model may return (numpy and pandas values included)."""
    return orjson.dumps(value, default=_default, option=_DUMPS_OPTIONS)


def _names(width: int, outputs: Sequence[str]) -> list[str]:
    if len(outputs) == width:
        return list(outputs)
    if width == 1:
        return ["prediction"]
    return [f"prediction_{i}" for i in range(width)]


def prediction_table(prediction: Any, outputs: Sequence[str]) -> tuple[list, list[str]]:
    """``(values, columns)`` for the odahu answer: one output per row gives a flat list.

    ``outputs`` are the signature's output names; they name the columns when their
    number matches what the model returned.
    """
    if isinstance(prediction, np.ndarray):
        if prediction.ndim == 2:
            if prediction.shape[1] == 1:
                return prediction[:, 0].tolist(), _names(1, outputs)
            return prediction.tolist(), _names(prediction.shape[1], outputs)
        if prediction.ndim == 1:
            return prediction.tolist(), _names(1, outputs)
        return prediction.tolist(), _names(1, outputs)
    if isinstance(prediction, pd.DataFrame):
        columns = [str(c) for c in prediction.columns]
        if len(columns) == 1:
            return prediction.iloc[:, 0].tolist(), columns
        return prediction.to_numpy().tolist(), columns
    if isinstance(prediction, pd.Series):
        name = [str(prediction.name)] if prediction.name is not None else _names(1, outputs)
        return prediction.tolist(), name
    if isinstance(prediction, list | tuple):
        return list(prediction), _names(1, outputs)
    return [prediction], _names(1, outputs)


def invoke_body(prediction: Any, outputs: Sequence[str]) -> bytes:
    values, columns = prediction_table(prediction, outputs)
    return dumps({"prediction": values, "columns": columns})


def invocations_body(prediction: Any) -> bytes:
    """``{"predictions": ...}`` exactly as MLflow's scoring server encodes it."""
    if isinstance(prediction, np.ndarray):
        values: Any = prediction.tolist()
    elif isinstance(prediction, pd.DataFrame):
        values = prediction.to_dict(orient="records")
    elif isinstance(prediction, pd.Series):
        values = pd.DataFrame(prediction).to_dict(orient="records")
    else:
        values = prediction
    return dumps({"predictions": values})
