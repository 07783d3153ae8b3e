"""DataFrames in and out (pandas is imported only when a DataFrame is asked for).

- :func:`invoke_body`: a DataFrame, a list of row dicts, or an ODAHU ``{"columns", "data"}``
  body -> the ODAHU invoke body (NaN -> ``null``, times -> ISO strings).
- :func:`prediction_frame`: a model's answer -> a DataFrame on the input's index, with the
  Request-ID of the call in a ``request_id`` column.
- :func:`records_frame`: records (JSON objects) -> a DataFrame with ``time`` as UTC times.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from .v2 import flatten

if TYPE_CHECKING:
    import pandas as pd

REQUEST_ID = "request_id"
RECORD_TIME = "%Y-%m-%d %H:%M:%S %z"


def pandas() -> Any:
    """The pandas module, or an ImportError saying how to get it."""
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("DataFrames need pandas: pip install 'mlgate[sdk]'") from exc
    return pd


def is_frame(data: Any) -> bool:
    return type(data).__name__ == "DataFrame" and hasattr(data, "columns")


def json_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy scalars
    if item is not None and not isinstance(value, str | bytes):
        return json_value(item())
    if type(value).__name__ in ("NaTType", "NAType"):
        return None
    return value


def invoke_body(data: Any) -> dict[str, Any]:
    """The ODAHU invoke body for ``data`` (see the module docstring)."""
    if is_frame(data):
        columns = [str(c) for c in data.columns]
        rows = [[json_value(v) for v in row] for row in data.itertuples(index=False, name=None)]
        return {"columns": columns, "data": rows}
    if isinstance(data, Mapping):
        if "data" not in data:
            raise ValueError('a dict must be an invoke body: {"columns": [...], "data": [[...]]}')
        return dict(data)
    if isinstance(data, Sequence) and not isinstance(data, str | bytes) and data \
            and all(isinstance(r, Mapping) for r in data):
        columns: list[str] = []
        for row in data:
            columns += [str(k) for k in row if str(k) not in columns]
        return {"columns": columns,
                "data": [[json_value(row.get(c)) for c in columns] for row in data]}
    raise TypeError("invoke data must be a pandas DataFrame, a non-empty list of row dicts "
                    'or {"columns": [...], "data": [[...]]}')


def row_count(body: Mapping[str, Any]) -> int:
    rows = body.get("data")
    return len(rows) if isinstance(rows, list) else 0


def split_body(body: dict[str, Any], batch_size: int | None) -> list[dict[str, Any]]:
    """The body in calls of at most ``batch_size`` rows (one call when ``None``)."""
    rows = body.get("data") or []
    if not batch_size or len(rows) <= batch_size:
        return [body]
    return [{**body, "data": rows[i:i + batch_size]} for i in range(0, len(rows), batch_size)]


def answer_columns(answer: Any) -> tuple[list[str], list[list[Any]]]:
    """``(columns, rows)`` of an ODAHU answer or of a KServe v2 answer (one column per output,
    ``name_<i>`` for an output of several values per row)."""
    if isinstance(answer, Mapping) and "prediction" in answer:
        prediction = answer["prediction"]
        names = [str(c) for c in answer.get("columns") or []]
        rows = [p if isinstance(p, list) else [p] for p in prediction]
        width = len(rows[0]) if rows else len(names)
        if len(names) != width:
            names = ["prediction"] if width == 1 else [f"prediction_{i}" for i in range(width)]
        return names, rows
    if isinstance(answer, Mapping) and isinstance(answer.get("outputs"), list):
        columns: list[str] = []
        per_output: list[list[list[Any]]] = []
        for tensor in answer["outputs"]:
            name, data = str(tensor.get("name")), list(flatten(tensor.get("data") or []))
            shape = tensor.get("shape") or [len(data)]
            n = int(shape[0]) if shape else len(data)
            width = len(data) // n if n else 0
            per_output.append([data[i * width:(i + 1) * width] for i in range(n)])
            columns += [name] if width == 1 else [f"{name}_{i}" for i in range(width)]
        n_rows = min((len(o) for o in per_output), default=0)
        rows = [[v for output in per_output for v in output[i]] for i in range(n_rows)]
        return columns, rows
    raise ValueError(f"not a model answer mlgate knows: {str(answer)[:200]}")


def prediction_frame(parts: Sequence[tuple[Any, str]], index: Any = None,
                     attrs: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One DataFrame from the answers of the calls (``(answer, request id)`` each), in order,
    on ``index`` (the input DataFrame's) when its length fits."""
    pd = pandas()
    columns: list[str] = []
    rows: list[list[Any]] = []
    ids: list[str] = []
    for answer, request_id in parts:
        names, values = answer_columns(answer)
        columns = columns or names
        rows += values
        ids += [request_id] * len(values)
    frame = pd.DataFrame(rows, columns=columns)
    frame[REQUEST_ID] = ids
    if index is not None and len(index) == len(frame):
        frame.index = index
    frame.attrs.update(attrs or {})
    return frame


def records_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Records as rows; nested values (headers, payload) stay dicts; ``time`` as UTC times."""
    pd = pandas()
    frame = pd.DataFrame.from_records(list(records))
    if "time" in frame.columns:
        frame["time"] = pd.to_datetime(frame["time"], format=RECORD_TIME, utc=True)
    return frame


def dataset_frame(content: bytes, fmt: str) -> pd.DataFrame:
    """A data set's file (Parquet, or JSON Lines) as a DataFrame."""
    import io

    pd = pandas()
    if fmt == "parquet":
        return pd.read_parquet(io.BytesIO(content))
    return pd.read_json(io.BytesIO(content), lines=True) if content.strip() else pd.DataFrame()
