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
    rows: list[Sequence[Any]]
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


def without_columns(table: Table, names: Sequence[str]) -> Table:
    """The table without the columns ``names`` (those it has); the model never sees them."""
    drop = set(names) & set(table.columns)
    if not drop:
        return table
    keep = [i for i, c in enumerate(table.columns) if c not in drop]
    rows = [tuple(row[i] for i in keep) for row in table.rows]
    return Table([table.columns[i] for i in keep], rows, table.positions, table.bad)


def count_rows(fmt: str, data: bytes) -> int:
    """How many rows ``read_table`` will give (good and bad), cheaply where the format
    allows; :class:`UnreadableObject` like ``read_table``."""
    if fmt == "jsonl":
        _text(data)
        return sum(1 for line in data.splitlines() if line.strip())
    if fmt == "csv":
        text = _text(data)
        if '"' not in text and "\r" not in text:  # no quoted field: one record per line
            return max(0, sum(1 for line in text.split("\n") if line) - 1)
        reader = csv.reader(io.StringIO(text, newline=""))
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


def _column(values: Sequence[str]) -> list[Any]:
    """A CSV column's values as :func:`_cell` would make them, converted a whole column at a
    time where every field is a number (C loops instead of one ``try`` per field)."""
    try:
        return list(map(int, values))
    except ValueError:
        pass
    try:
        numbers = list(map(float, values))
    except ValueError:
        return [_cell(v) for v in values]
    return numbers if all(map(math.isfinite, numbers)) else [_cell(v) for v in values]


def _read_csv(data: bytes) -> Table:
    """With pyarrow installed (the ``parquet`` extra), its C++ reader takes the objects it
    reads exactly as the standard library's path does (:func:`_read_csv_arrow`); the
    standard library reads everything else, and everything on a core install."""
    fast = _read_csv_arrow(data)
    return fast if fast is not None else _read_csv_stdlib(data)


ARROW_NUMBERS = frozenset({"int64", "double"})


def _read_csv_arrow(data: bytes) -> Table | None:
    """None unless pyarrow is installed and the object is plain: UTF-8, every record as wide
    as the header, numbers finite, nothing inferred as a boolean, date or time (those the
    standard library path keeps as text). Text columns are converted field by field, so a
    number next to a malformed field stays a number, as there."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    try:
        data.decode("utf-8")
        table = pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=False),
            convert_options=pacsv.ConvertOptions(null_values=[""], true_values=["\0"],
                                                 false_values=["\0"],
                                                 strings_can_be_null=True))
    except (UnicodeDecodeError, pa.ArrowInvalid):
        return None
    columns = []
    for schema_field, column in zip(table.schema, table.columns, strict=True):
        kind = str(schema_field.type)
        if kind in ARROW_NUMBERS:
            if kind == "double" and pc.any(pc.invert(pc.is_finite(column))).as_py():
                return None
            values = column.to_pylist()
        elif kind in ("string", "large_string"):
            values = [None if v is None else _cell(v) for v in column.to_pylist()]
        elif kind == "null":
            values = [None] * len(column)
        else:
            return None
        columns.append(values)
    names = [str(n) for n in table.column_names]
    if not names or len(set(names)) != len(names):
        return None
    rows = list(zip(*columns, strict=True)) if columns else []
    return Table(names, rows, list(range(len(rows))))


def _read_csv_stdlib(data: bytes) -> Table:
    reader = csv.reader(io.StringIO(_text(data), newline=""))
    try:
        header = next(reader, None)
        if not header:
            raise UnreadableObject("no header line: a CSV object starts with its column names")
        found = [record for record in reader if record]
    except csv.Error as exc:
        raise UnreadableObject(f"not a CSV table: {exc}") from None
    width = len(header)
    bad: list[BadRow] = []
    if all(len(record) == width for record in found):
        records, positions = found, list(range(len(found)))
    else:
        records, positions = [], []
        for position, record in enumerate(found):
            if len(record) == width:
                records.append(record)
                positions.append(position)
            else:
                bad.append(BadRow(position, dict(zip(header, record, strict=False)),
                                  f"{len(record)} fields, the header has {width}"))
    columns = [_column(c) for c in zip(*records, strict=True)] if records else []
    return Table(header, list(zip(*columns, strict=True)), positions, bad)


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


def write_table(fmt: str, columns: Sequence[str], data: Sequence[Sequence[Any]]) -> bytes:
    """An output object: ``columns`` (``row``, ``request_id``, the model's) and ``data``,
    one sequence of values per column (all of one length)."""
    rows = zip(*data, strict=True)
    if fmt == "jsonl":
        return b"".join(dumps(dict(zip(columns, row, strict=True))) + b"\n" for row in rows)
    if fmt == "csv":
        fast = _write_csv_arrow(columns, data)
        if fast is not None:
            return fast
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        if any(c and isinstance(c[0], list | dict) for c in data):
            rows = ([_csv_value(v) for v in row] for row in zip(*data, strict=True))
        writer.writerows(rows)  # None is written as an empty field
        return out.getvalue().encode()
    if fmt == "parquet":
        import pyarrow as pa

        pq = _parquet()
        table = pa.table({c: list(v) if v else pa.array([], pa.null())
                          for c, v in zip(columns, data, strict=True)})
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()
    if fmt == "odahu-json":
        return dumps({"columns": list(columns), "data": [list(r) for r in rows]})
    raise ValueError(f"unknown format {fmt!r}")


def _write_csv_arrow(columns: Sequence[str], data: Sequence[Sequence[Any]]) -> bytes | None:
    """pyarrow's C++ writer, when installed and every column has one plain type (numbers,
    text): strings quoted, numbers in their shortest form (``7``, ``5.72``)."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    try:
        table = pa.table({c: pa.array(v) for c, v in zip(columns, data, strict=True)})
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    plain = (pa.types.is_integer, pa.types.is_floating, pa.types.is_string, pa.types.is_null)
    if not all(any(is_type(t) for is_type in plain) for t in table.schema.types):
        return None  # booleans, lists, mixed: the standard library writes them
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(quoting_style="needed"))
    return sink.getvalue().replace(b"\r\n", b"\n")


def columns_of(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Row-major to column-major (``width`` columns, also when there is no row)."""
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


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
    return table.columns, {int(row[0]): list(row) for row in table.rows}
