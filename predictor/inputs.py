"""Turn the rows of a request into the model's input, or say precisely what is wrong.

An :class:`InputPlan` is built once from the model's signature. Per request it
checks the request's column names against the signature (any order; cached per
distinct order), checks every value against its column's type, and returns either

* a 2-D ``numpy`` array in signature column order, when every column has the same
  numeric type (the fast path: one ``np.array(rows)`` call after a type scan done
  in C by ``set(map(type, ...))``), or
* a ``pandas.DataFrame`` with one correctly typed column per signature column.

Every refusal is an :class:`InputError` whose message is meant for the client.
"""

from __future__ import annotations

import base64
import binascii
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import orjson
import pandas as pd

from predictor.schema import KIND_ANY, Column

# numpy dtype of a column of each kind; kinds without one are kept as Python objects.
_DTYPES: dict[str, Any] = {
    "double": np.float64,
    "float": np.float32,
    "long": np.int64,
    "integer": np.int32,
    "boolean": np.bool_,
}
_FLOAT_KINDS = frozenset({"double", "float"})
_FAST_TYPES_KINDS = frozenset({"double", "float", "long", "integer"})
_INT_KINDS = frozenset({"long", "integer"})
_INT_BOUNDS = {"long": (-(2**63), 2**63 - 1), "integer": (-(2**31), 2**31 - 1)}
# Python types that can go straight into np.array(rows, dtype) for a homogeneous plan.
_FAST_TYPES = {np.float64: {int, float}, np.float32: {int, float}, np.int64: {int}, np.int32: {int}}
_EXPECTED = {
    "double": "a number",
    "float": "a number",
    "long": "an integer",
    "integer": "a 32-bit integer",
    "boolean": "true or false",
    "string": "a string",
    "binary": "a base64 string",
    "datetime": "a date-time string",
}
_MAX_CACHED_ORDERS = 256
_MAX_NAMES_SHOWN = 20


class InputError(ValueError):
    """The request cannot be turned into model input; ``str(err)`` is the client message."""


@dataclass(frozen=True, eq=False)
class _Order:
    """How the columns of one request map onto the signature's columns."""

    kinds: tuple[str, ...]  # kind of each request column, in request order
    names: tuple[str, ...]  # name of each request column, in request order
    targets: tuple[int, ...]  # signature position of each request column
    identity: bool  # request order == signature order, nothing missing
    missing: tuple[int, ...]  # signature positions of omitted optional columns
    scatter: np.ndarray | None = None  # ``targets`` as an index array


def _show(value: Any, limit: int = 60) -> str:
    """A value as the client wrote it (JSON), shortened."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _quoted(names: Sequence[str]) -> str:
    shown = ", ".join(f'"{n}"' for n in names[:_MAX_NAMES_SHOWN])
    more = len(names) - _MAX_NAMES_SHOWN
    return shown + (f" (and {more} more)" if more > 0 else "")


def _value_ok(kind: str, value: Any, required: bool) -> bool:
    """Whether ``value`` may stand in a column of ``kind``; ``None`` only if optional."""
    if value is None:
        return not required and kind not in _INT_KINDS and kind != "boolean"
    t = type(value)
    if kind in _FLOAT_KINDS:
        return t is float or t is int
    if kind in _INT_KINDS:
        if t is float and value.is_integer():
            value = int(value)
        elif t is not int:
            return False
        low, high = _INT_BOUNDS[kind]
        return low <= value <= high
    if kind == "boolean":
        return t is bool
    if kind in ("string", "datetime", "binary"):
        return t is str
    return True


class InputPlan:
    """Validation and conversion of request rows for one model signature.

    ``columns`` is the signature's input columns, or ``None`` when the model has no
    column-based signature (then rows are passed on as a DataFrame, or as an array of
    ``tensor_dtype`` for a tensor signature).
    """

    def __init__(self, columns: Sequence[Column] | None, tensor_dtype: Any = None) -> None:
        self.columns: tuple[Column, ...] | None = tuple(columns) if columns is not None else None
        self.tensor_dtype = np.dtype(tensor_dtype) if tensor_dtype is not None else None
        self._orders: dict[tuple[str, ...], _Order] = {}
        # Memory order of the arrays built: "F" is what numpy gives for a one-block
        # DataFrame, which is what the model sees through pyfunc; BLAS-backed models can
        # differ in the last bit between C and F inputs, so the loader picks the one
        # that reproduces pyfunc exactly.
        self.layout: str = "F"
        if self.columns is None:
            self.names: tuple[str, ...] = ()
            self.width = 0
            self.dtype = None
            self.positional = True
            return
        self.positional = any(c.name is None for c in self.columns)
        self.names = tuple(
            c.name if c.name is not None else str(i) for i, c in enumerate(self.columns)
        )
        self.width = len(self.columns)
        self._position = {name: i for i, name in enumerate(self.names)}
        kinds = {c.kind for c in self.columns}
        only = next(iter(kinds)) if len(kinds) == 1 else None
        self.dtype = _DTYPES.get(only) if only in _FAST_TYPES_KINDS else None
        self._signature_order = _Order(
            kinds=tuple(c.kind for c in self.columns),
            names=self.names,
            targets=tuple(range(self.width)),
            identity=True,
            missing=(),
        )
        self._required = tuple(c.required for c in self.columns)

    @property
    def has_signature(self) -> bool:
        return self.columns is not None

    # -- public -----------------------------------------------------------------

    def convert(self, columns: Any, rows: Any) -> np.ndarray | pd.DataFrame:
        """Validate ``rows`` (a list of lists) named by ``columns`` (or ``None``).

        Returns an array when the plan is homogeneous (``self.dtype``), else a DataFrame.
        """
        if type(rows) is not list:
            raise InputError('"data" must be a list of rows, each a list of values')
        if not rows:
            raise InputError('"data" has no rows')
        if self.columns is None:
            return self._convert_unchecked(columns, rows)
        order = self._order(columns)
        self._check_shape(rows, len(order.names))
        if self.dtype is not None:
            return self._to_array(order, rows)
        return self._to_frame(order, rows)

    def frame(self, array: np.ndarray) -> pd.DataFrame:
        """A DataFrame with the signature's column names over ``array`` (no copy)."""
        return pd.DataFrame(array, columns=list(self.names), copy=False)

    # -- columns ------------------------------------------------------------------

    def _order(self, columns: Any) -> _Order:
        if columns is None or self.positional:
            return self._signature_order
        if type(columns) is not list:
            raise InputError('"columns" must be a list of column names')
        key = tuple(columns) if all(type(c) is str for c in columns) else None
        if key is None:
            raise InputError('"columns" must be a list of column names (strings)')
        if key == self.names:
            return self._signature_order
        order = self._orders.get(key)
        if order is None:
            order = self._build_order(key)
            if len(self._orders) >= _MAX_CACHED_ORDERS:
                self._orders.clear()
            self._orders[key] = order
        return order

    def _build_order(self, key: tuple[str, ...]) -> _Order:
        seen = set(key)
        if len(seen) != len(key):
            duplicates = sorted({c for c in key if key.count(c) > 1})
            raise InputError(f"duplicate columns: {_quoted(duplicates)}")
        unknown = [c for c in key if c not in self._position]
        missing = [
            n for n, req in zip(self.names, self._required, strict=True) if req and n not in seen
        ]
        problems = []
        if unknown:
            problems.append(f"unknown columns: {_quoted(unknown)}")
        if missing:
            problems.append(f"missing columns: {_quoted(missing)}")
        if unknown:
            problems.append(f"the model takes {_quoted(list(self.names))}")
        if problems:
            raise InputError("; ".join(problems))
        assert self.columns is not None
        targets = tuple(self._position[c] for c in key)
        omitted = tuple(i for i, n in enumerate(self.names) if n not in seen)
        if omitted and self.dtype is not None and self.dtype not in (np.float64, np.float32):
            names = [self.names[i] for i in omitted]
            raise InputError(
                f"missing columns: {_quoted(names)} (no value stands for a missing integer)"
            )
        return _Order(
            kinds=tuple(self.columns[i].kind for i in targets),
            names=key,
            targets=targets,
            identity=False,
            missing=omitted,
            scatter=np.asarray(targets, dtype=np.intp),
        )

    # -- rows ---------------------------------------------------------------------

    @staticmethod
    def _check_shape(rows: list, width: int) -> None:
        if set(map(type, rows)) != {list}:
            for i, row in enumerate(rows):
                if type(row) is not list:
                    raise InputError(
                        f'"data" must be a list of rows, each a list of values; '
                        f"row {i} is {_show(row)}"
                    )
        if set(map(len, rows)) != {width}:
            for i, row in enumerate(rows):
                if len(row) != width:
                    raise InputError(
                        f"row {i} has {len(row)} values, expected {width} (one per column)"
                    )

    def _scan(self, order: _Order, rows: list) -> None:
        """Find the first value its column cannot take, and refuse it."""
        assert self.columns is not None
        required = [self.columns[t].required for t in order.targets]
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                kind = order.kinds[j]
                if not _value_ok(kind, value, required[j]):
                    raise InputError(
                        f'column "{order.names[j]}": expected {_EXPECTED.get(kind, "a value")}, '
                        f"got {_show(value)} (row {i})"
                    )

    def _to_array(self, order: _Order, rows: list) -> np.ndarray:
        if not set(map(type, chain.from_iterable(rows))) <= _FAST_TYPES[self.dtype]:
            self._scan(order, rows)  # raises unless the odd values are allowed (null, 3.0)
        try:
            array = _strict_array(rows, self.dtype)
        except (OverflowError, ValueError, DeprecationWarning) as err:
            self._scan(order, rows)
            raise InputError(f"a value does not fit its column: {err}") from err
        if order.identity:
            return array if self.layout == "C" or len(array) == 1 else np.asfortranarray(array)
        if order.missing:
            out = np.full((len(rows), self.width), np.nan, dtype=self.dtype, order=self.layout)
        else:
            out = np.empty((len(rows), self.width), dtype=self.dtype, order=self.layout)
        out[:, order.scatter] = array
        return out

    def _to_frame(self, order: _Order, rows: list) -> pd.DataFrame:
        assert self.columns is not None
        self._scan(order, rows)
        by_target: dict[int, tuple] = dict(zip(order.targets, zip(*rows, strict=True), strict=True))
        data: dict[str, Any] = {}
        for position, column in enumerate(self.columns):
            values = by_target.get(position, (None,) * len(rows))
            data[self.names[position]] = _column_values(column, values)
        return pd.DataFrame(data)

    def _convert_unchecked(self, columns: Any, rows: list) -> np.ndarray | pd.DataFrame:
        if self.tensor_dtype is not None:
            try:
                return _strict_array(rows, self.tensor_dtype)
            except (TypeError, ValueError, OverflowError, DeprecationWarning) as err:
                raise InputError(
                    f"data does not fit the model's {self.tensor_dtype} input: {err}"
                ) from err
        if columns is not None and (
            type(columns) is not list or not all(type(c) is str for c in columns)
        ):
            raise InputError('"columns" must be a list of column names (strings)')
        if columns is not None:
            self._check_shape(rows, len(columns))
        try:
            return pd.DataFrame(rows, columns=columns)
        except (TypeError, ValueError) as err:
            raise InputError(f"data is not a table: {err}") from err


def _strict_array(rows: list, dtype: Any) -> np.ndarray:
    """``np.array(rows, dtype)``, refusing Python ints out of an integer dtype's range.

    numpy 1.x wraps them around with a ``DeprecationWarning`` (numpy 2 raises
    ``OverflowError``); the warning is turned into an exception for narrow integer dtypes.
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "iu" or dtype.itemsize >= 8:
        return np.array(rows, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        return np.array(rows, dtype=dtype)


def _column_values(column: Column, values: tuple) -> Any:
    """One column's validated values as the array pandas should hold."""
    kind = column.kind
    if kind in _FLOAT_KINDS:
        return np.array(values, dtype=_DTYPES[kind])  # None -> NaN
    if kind in _INT_KINDS:
        return np.array([int(v) for v in values], dtype=_DTYPES[kind])
    if kind == "boolean":
        return np.array(values, dtype=np.bool_)
    if kind == "binary":
        try:
            return np.array(
                [None if v is None else base64.b64decode(v, validate=True) for v in values],
                dtype=object,
            )
        except (binascii.Error, ValueError) as err:
            raise InputError(f'column "{column.name}": expected a base64 string ({err})') from err
    if kind == "datetime":
        try:
            return pd.to_datetime(pd.Series(values, dtype=object))
        except (ValueError, TypeError) as err:
            raise InputError(
                f'column "{column.name}": expected a date-time string ({err})'
            ) from err
    if kind == KIND_ANY or kind == "string":
        return np.array(values, dtype=object) if kind == "string" else list(values)
    return list(values)
