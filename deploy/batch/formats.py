"""Objects to rows and rows to objects, per job format: jsonl, csv, parquet, odahu-json.

Reading gives a :class:`Table`: column names, the rows that can be sent to the model
(each with its position in the object, its *row id*), and the rows that cannot even be
read (a JSON Lines line that is not an object, a CSV record with the wrong number of
fields), each with the reason. An object that cannot be read at all raises
:class:`UnreadableObject`.

An output object has the input's format, one row per predicted input row, in input
order: ``row`` (the input's row id), ``request_id`` (the call that predicted it: the
Request-ID its records and feedback carry), then the model's output columns.

Parquet needs pyarrow (``pip install 'mlgate[parquet]'``), imported only for parquet jobs.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

ROW = "row"
REQUEST_ID = "request_id"
OUTPUT_LEAD = (ROW, REQUEST_ID)
_DUMPS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


class UnreadableObject(ValueError):
    """The whole object cannot be read in this format; the message says why."""


@dataclass(frozen=True, slots=True)
class BadRow:
    position: int
    raw: Any
    reason: str


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    positions: list[int]
    bad: list[BadRow] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.rows) + len(self.bad)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=_DUMPS, default=str)


# -- reading -----------------------------------------------------------------------------------


def read_table(fmt: str, data: bytes) -> Table:
    """The object's rows; :class:`UnreadableObject` when it cannot be read at all."""
    if fmt == "jsonl":
        return _read_jsonl(data)
    if fmt == "csv":
        return _read_csv(data)
    if fmt == "parquet":
        return _read_parquet(data)
    if fmt == "odahu-json":
        return _read_odahu(data)
    raise UnreadableObject(f"unknown format {fmt!r}")


def count_rows(fmt: str, data: bytes) -> int:
    """How many rows ``read_table`` will give (good and bad), cheaply where the format
    allows; :class:`UnreadableObject` like ``read_table``."""
    if fmt == "jsonl":
        _text(data)
        return sum(1 for line in data.splitlines() if line.strip())
    if fmt == "csv":
        reader = csv.reader(io.StringIO(_text(data), newline=""))
        try:
            return max(0, sum(1 for record in reader if record) - 1)
        except csv.Error as exc:
            raise UnreadableObject(f"not a CSV table: {exc}") from None
    if fmt == "parquet":
        pq = _parquet()
        try:
            return pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
        except Exception as exc:  # pyarrow raises several kinds for a bad file
            raise UnreadableObject(f"not a Parquet file: {exc}") from None
    return read_table(fmt, data).size


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableObject(f"not UTF-8 text: {exc}") from None


def _read_jsonl(data: bytes) -> Table:
    _text(data)
    columns: dict[str, None] = {}
    records: list[tuple[int, dict[str, Any]]] = []
    bad: list[BadRow] = []
    position = 0
    for line in data.splitlines():
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            bad.append(BadRow(position, line.decode("utf-8", "replace"), f"not JSON: {exc}"))
        else:
            if isinstance(value, dict):
                records.append((position, value))
                columns.update(dict.fromkeys(value))
            else:
                bad.append(BadRow(position, value, "a JSON Lines row must be a JSON object"))
        position += 1
    names = list(columns)
    return Table(names, [[record.get(c) for c in names] for _, record in records],
                 [p for p, _ in records], bad)


def _cell(text: str) -> Any:
    """A CSV field as the value a JSON client would send: a number when it is one."""
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _read_csv(data: bytes) -> Table:
    reader = csv.reader(io.StringIO(_text(data), newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise UnreadableObject("no header line: a CSV object starts with its column names")
        rows: list[list[Any]] = []
        positions: list[int] = []
        bad: list[BadRow] = []
        width = len(header)
        position = 0
        for record in reader:
            if not record:
                continue
            if len(record) != width:
                bad.append(BadRow(position, dict(zip(header, record, strict=False)),
                                  f"{len(record)} fields, the header has {width}"))
            else:
                rows.append([_cell(v) for v in record])
                positions.append(position)
            position += 1
    except csv.Error as exc:
        raise UnreadableObject(f"not a CSV table: {exc}") from None
    return Table(header, rows, positions, bad)


def _parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UnreadableObject("the parquet format needs pyarrow: pip install "
                               "'mlgate[parquet]'") from None
    return pq


def _read_parquet(data: bytes) -> Table:
    pq = _parquet()
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several kinds for a bad file
        raise UnreadableObject(f"not a Parquet file: {exc}") from None
    columns = [str(c) for c in table.column_names]
    values = [col.to_pylist() for col in table.columns]
    rows = [list(r) for r in zip(*values, strict=True)] if values else []
    return Table(columns, rows, list(range(len(rows))))


def _read_odahu(data: bytes) -> Table:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UnreadableObject(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise UnreadableObject('an odahu-json object is {"columns": [...], "data": [[...], ...]}')
    columns = doc.get("columns")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise UnreadableObject('"columns" must be a list of column names')
    rows, positions, bad = [], [], []
    for position, row in enumerate(doc["data"]):
        if isinstance(row, list) and len(row) == len(columns):
            rows.append(row)
            positions.append(position)
        else:
            bad.append(BadRow(position, row, f"a row must be a list of {len(columns)} values"))
    return Table(columns, rows, positions, bad)


# -- writing -----------------------------------------------------------------------------------


def write_table(fmt: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """An output object: ``columns`` (``row``, ``request_id``, the model's) and the rows."""
    if fmt == "jsonl":
        return b"".join(dumps(dict(zip(columns, row, strict=True))) + b"\n" for row in rows)
    if fmt == "csv":
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_csv_value(v) for v in row] for row in rows)
        return out.getvalue().encode()
    if fmt == "parquet":
        import pyarrow as pa

        pq = _parquet()
        table = pa.Table.from_pylist([dict(zip(columns, row, strict=True)) for row in rows]) \
            if rows else pa.table({c: pa.array([], pa.null()) for c in columns})
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()
    if fmt == "odahu-json":
        return dumps({"columns": list(columns), "data": [list(r) for r in rows]})
    raise ValueError(f"unknown format {fmt!r}")


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return dumps(value).decode()
    return value


def read_output(fmt: str, data: bytes) -> tuple[list[str], dict[int, list[Any]]]:
    """An output object written by :func:`write_table`: its columns and rows by row id."""
    table = read_table(fmt, data)
    if not table.rows and not table.bad:
        return table.columns, {}  # JSON Lines without a row has no columns either
    if not table.columns or table.columns[0] != ROW:
        raise UnreadableObject(f"not an output object of a job: its first column is not {ROW!r}")
    return table.columns, {int(row[0]): row for row in table.rows}
