"""The export's join in DuckDB: predictions, their inputs and their latest feedback, one row per
predicted input row (module ``feedback.dataset.query`` says what the rows hold).

Everything relational is SQL: reading the JSON Lines files, keeping one record per Request-ID
and deployment (and the latest feedback per Request-ID), the two joins, one row per input
row, typing the features, and writing hive partitions. Reading a label out of a feedback
document is the live join's own function (:func:`feedback.extract.read_label`), called from
SQL on each distinct feedback document, so the data set and the live figures agree on what
a label is.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..extract import read_label
from ..paths import MISSING, compile_path, simple_steps
from ..spec import REGRESSION, QualitySpec
from .query import PARTITION_COLUMNS, ExportQuery, MissingExtra, feature_column
from .sources import Sources

TIME_FORMAT = "%Y-%m-%d %H:%M:%S %z"
NUMBERS = "('BIGINT', 'UBIGINT', 'DOUBLE')"
PREDICTIONS = {"request_id": "VARCHAR", "model_name": "VARCHAR", "model_version": "VARCHAR",
               "response_content": "VARCHAR", "time": "VARCHAR", "response_status": "VARCHAR",
               "deployment_id": "VARCHAR"}
REQUESTS = {"request_id": "VARCHAR", "deployment_id": "VARCHAR", "request_content": "VARCHAR",
            "time": "VARCHAR"}
FEEDBACK = {"request_id": "VARCHAR", "model_name": "VARCHAR", "payload": "JSON",
            "time": "VARCHAR", "time_us": "BIGINT"}
LABEL_CACHE = 100_000
REQUEST_PARTS = ("['$.columns', '$.dataframe_split.columns', '$.data', "
                 "'$.dataframe_split.data']")
"""A request's columns and rows, in the odahu-ml-server layout or MLflow's ``dataframe_split``,
from one parse (a wildcard path that matches nothing gives ``[]``, not NULL, so the layout
is chosen on the objects, before their elements are listed)."""


def _connect(threads: int | None = None) -> Any:
    try:
        import duckdb
    except ImportError as exc:  # the dataset extra is not installed
        raise MissingExtra("the data set export needs DuckDB: pip install 'mlgate[dataset]'") \
            from exc
    con = duckdb.connect(config={"threads": threads} if threads else {})
    con.execute("SET TimeZone = 'UTC'")
    return con


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _reader(files: list[Path], columns: dict[str, str]) -> str:
    if not files:
        cols = ", ".join(f"CAST(NULL AS {t}) AS {_ident(n)}" for n, t in columns.items())
        return f"(SELECT {cols} WHERE false)"
    listing = ", ".join(_literal(str(f)) for f in files)
    struct = ", ".join(f"{_literal(n)}: {_literal(t)}" for n, t in columns.items())
    return (f"read_json([{listing}], format='newline_delimited', columns={{{struct}}}, "
            "ignore_errors=true, hive_partitioning=false)")


def duckdb_path(text: str) -> str | None:
    """A JSONPath as DuckDB's JSON functions read it, for simple paths (None otherwise)."""
    steps = simple_steps(text)
    if steps is None:
        return None
    return "$" + "".join(f"[{step}]" if isinstance(step, int)
                         else '."' + step.replace('"', '\\"') + '"' for step in steps)


def _prediction_sql(query: ExportQuery) -> str:
    """SQL of the prediction JSON (one value, or a list of one per row) of ``content``."""
    if query.prediction is None:
        return ("coalesce(json_extract(content, '$.prediction'), "
                "json_extract(content, '$.predictions'), CASE WHEN "
                "json_array_length(content, '$.outputs') = 1 THEN "
                "json_extract(content, '$.outputs[0].data') END)")
    path = duckdb_path(query.prediction)
    if path is not None:
        return f"json_extract(content, {_literal(path)})"
    return "mlgate_prediction(content)"


def _value_sql(element: str, task: str) -> str:
    """SQL typing one JSON value as a number (regression) or a class (text)."""
    unwrapped = (f"(CASE WHEN json_type({element}) = 'ARRAY' AND json_array_length({element}) = 1"
                 f" THEN json_extract({element}, '$[0]') ELSE {element} END)")
    if task == REGRESSION:
        return (f"(CASE WHEN json_type({unwrapped}) IN {NUMBERS} "
                f"THEN TRY_CAST(json_extract_string({unwrapped}, '$') AS DOUBLE) END)")
    text = f"json_extract_string({unwrapped}, '$')"
    return (f"(CASE json_type({unwrapped}) WHEN 'VARCHAR' THEN {text} "
            f"WHEN 'BOOLEAN' THEN {text} WHEN 'BIGINT' THEN {text} WHEN 'UBIGINT' THEN {text} "
            f"WHEN 'DOUBLE' THEN (CASE WHEN TRY_CAST({text} AS DOUBLE) = "
            f"floor(TRY_CAST({text} AS DOUBLE)) THEN CAST(CAST(TRY_CAST({text} AS DOUBLE) AS "
            f"BIGINT) AS VARCHAR) END) END)")


def _register_functions(con: Any, query: ExportQuery) -> None:
    import pyarrow as pa

    spec = QualitySpec(task=query.task, label=query.label, prediction=query.prediction)
    value_type = pa.float64() if query.task == REGRESSION else pa.string()
    sql_type = "DOUBLE[]" if query.task == REGRESSION else "VARCHAR[]"
    cache: dict[tuple[str, int], list[Any] | None] = {}

    def labels(payloads: Any, rows: Any) -> Any:
        out = []
        for text, n in zip(payloads.to_pylist(), rows.to_pylist(), strict=True):
            if text is None or n is None:
                out.append(None)
                continue
            key = (text, n)
            if key not in cache:
                if len(cache) >= LABEL_CACHE:
                    cache.clear()
                values, _path, _reason = read_label(json.loads(text), n, spec)
                cache[key] = list(values) if values is not None else None
            out.append(cache[key])
        return pa.array(out, pa.list_(value_type))

    con.create_function("mlgate_label", labels, ["VARCHAR", "BIGINT"], sql_type, type="arrow",
                        null_handling="special")
    if query.prediction is not None and duckdb_path(query.prediction) is None:
        path = compile_path(query.prediction)

        def predictions(contents: Any) -> Any:
            out = []
            for text in contents.to_pylist():
                found = path.find(json.loads(text)) if text else MISSING
                out.append(None if found is MISSING else json.dumps(found))
            return pa.array(out, pa.string())

        con.create_function("mlgate_prediction", predictions, ["VARCHAR"], "JSON",
                            type="arrow", null_handling="special")


def _bounds(query: ExportQuery) -> str:
    """SQL of the time and deployment filters on a record (its ``time`` is sortable text)."""
    parts = []
    if query.first_hour is not None:
        parts.append(f"time >= {_literal(query.first_hour.strftime('%Y-%m-%d %H:%M:%S'))}")
    if query.end_hour is not None:
        parts.append(f"time < {_literal(query.end_hour.strftime('%Y-%m-%d %H:%M:%S'))}")
    if query.deployment_id is not None:
        parts.append(f"deployment_id = {_literal(query.deployment_id)}")
    return " AND ".join(parts) or "true"


def prepare(con: Any, sources: Sources, query: ExportQuery) -> list[str]:
    """Create the view ``export_rows`` (every column, the partition columns and ``hour``
    included); returns the output columns in order, partition columns last.

    One record per Request-ID and deployment is kept (the earliest; and the latest feedback
    per Request-ID), ordered on every column that can differ, so re-runs pick the same one.
    The three readers and the joins are one statement: DuckDB runs them as one pipeline."""
    _register_functions(con, query)
    version = (f"AND model_version = {_literal(query.model_version)}"
               if query.model_version else "")
    con.execute(f"""
        CREATE TEMP TABLE joined AS
        WITH preds AS (
            SELECT request_id, deployment_id, model_name, model_version,
                   strptime(time, '{TIME_FORMAT}') AS time,
                   {_prediction_sql(query)} AS pj
            FROM (SELECT request_id, deployment_id, model_name, model_version, time,
                         response_content AS content
                  FROM {_reader(sources.predictions, PREDICTIONS)}
                  WHERE starts_with(response_status, '2') AND deployment_id IS NOT NULL
                    AND json_valid(response_content)
                    AND request_id IS NOT NULL AND model_name = {_literal(query.model_name)}
                    {version} AND {_bounds(query)}
                  QUALIFY row_number() OVER (PARTITION BY request_id, deployment_id
                                             ORDER BY time, response_content) = 1)),
        reqs AS (
            SELECT request_id, deployment_id,
                   json_extract_string(coalesce(parts[1], parts[2]), '$[*]') AS cols,
                   json_extract(coalesce(parts[3], parts[4]), '$[*]') AS data
            FROM (SELECT request_id, deployment_id,
                         json_extract(content, {REQUEST_PARTS}) AS parts
            FROM (SELECT request_id, deployment_id, request_content AS content
                  FROM {_reader(sources.requests, REQUESTS)}
                  WHERE request_id IS NOT NULL AND json_valid(request_content)
                    AND {_bounds(query)}
                  QUALIFY row_number() OVER (PARTITION BY request_id, deployment_id
                                             ORDER BY time) = 1))),
        fb AS (
            SELECT request_id, CAST(json_extract(payload, '$.json') AS VARCHAR) AS feedback,
                   strptime(time, '{TIME_FORMAT}') AS feedback_time
            FROM {_reader(sources.feedback, FEEDBACK)}
            WHERE model_name = {_literal(query.model_name)} AND request_id IS NOT NULL
            QUALIFY row_number() OVER (
                PARTITION BY request_id
                ORDER BY coalesce(time_us, epoch_us(strptime(time, '{TIME_FORMAT}'))) DESC,
                         CAST(payload AS VARCHAR) DESC) = 1)
        SELECT x.*, json_extract(r.data[x.row + 1], '$[*]') AS vals, r.cols, f.feedback,
               f.feedback_time
        FROM (SELECT request_id, deployment_id, model_name, model_version, time, n,
                     unnest(range(n)) AS row, pj
              FROM (SELECT *, CASE WHEN json_type(pj) = 'ARRAY'
                                   THEN CAST(json_array_length(pj) AS BIGINT) ELSE 1 END AS n
                    FROM preds WHERE pj IS NOT NULL)) AS x
        LEFT JOIN reqs r USING (request_id, deployment_id)
        LEFT JOIN fb f USING (request_id)""")
    con.execute("""
        CREATE TEMP TABLE labels AS
        SELECT feedback, n, mlgate_label(feedback, n) AS labels
        FROM (SELECT DISTINCT feedback, n FROM joined WHERE feedback IS NOT NULL)""")
    features, uniform = _features(con)
    feature_sql = ", ".join(
        f"{_feature_sql(name, kind, uniform.get(name))} AS {_ident(feature_column(name))}"
        for name, kind in features)
    labelled = "WHERE l.labels IS NOT NULL" if query.labelled_only else ""
    prediction = _value_sql("(CASE WHEN json_type(pj) = 'ARRAY' THEN "
                            "json_extract(pj, '$[' || row || ']') ELSE pj END)", query.task)
    con.execute(f"""
        CREATE TEMP VIEW export_rows AS
        SELECT request_id, row, deployment_id, time,
               {feature_sql + ',' if feature_sql else ''}
               {prediction} AS prediction, l.labels[row + 1] AS label, feedback_time,
               j.feedback, model_name, model_version, year(time) AS year,
               month(time) AS month, day(time) AS day, hour(time) AS hour
        FROM joined j LEFT JOIN labels l USING (feedback, n) {labelled}""")
    return ["request_id", "row", "deployment_id", "time",
            *(feature_column(name) for name, _ in features), "prediction", "label",
            "feedback_time", "feedback", *PARTITION_COLUMNS]


def _features(con: Any) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Every feature name in the requests and the SQL type its values fit (in the order of the
    requests' columns), and, when every request names the same columns, each one's position
    (so the rows are read by position, not looked up by name)."""
    layouts = con.execute("SELECT DISTINCT cols FROM joined WHERE cols IS NOT NULL "
                          "AND vals IS NOT NULL").fetchall()
    if len(layouts) == 1:
        names = list(layouts[0][0])
        if len(set(names)) == len(names):
            # the distinct combinations of the values' JSON types (a few rows), not a list
            # of every value's type per column: half the time of the typing pass
            kinds = ", ".join(f"json_type(vals[{i + 1}])" for i in range(len(names)))
            combos = con.execute(f"SELECT DISTINCT {kinds} FROM joined WHERE vals IS NOT NULL"
                                 ).fetchall() if names else []
            found = [{combo[i] for combo in combos} - {None, "NULL"} for i in range(len(names))]
            return ([(name, _sql_type(found[i])) for i, name in enumerate(names)],
                    {name: i + 1 for i, name in enumerate(names)})
    rows = con.execute("""
        SELECT name, list_distinct(list(json_type(value)) FILTER (WHERE value IS NOT NULL
                                                                 AND json_type(value) <> 'NULL'))
        FROM (SELECT unnest(cols) AS name, unnest(vals) AS value,
                     unnest(range(CAST(len(cols) AS BIGINT))) AS position
              FROM joined WHERE cols IS NOT NULL AND vals IS NOT NULL)
        WHERE name IS NOT NULL
        GROUP BY name ORDER BY min(position), name""").fetchall()
    return [(name, _sql_type(kinds or [])) for name, kinds in rows], {}


def _sql_type(kinds: Iterable[str]) -> str:
    found = set(kinds)
    if found and found <= {"BIGINT", "UBIGINT"}:
        return "BIGINT"
    if found and found <= {"BIGINT", "UBIGINT", "DOUBLE"}:
        return "DOUBLE"
    if found == {"BOOLEAN"}:
        return "BOOLEAN"
    return "VARCHAR"


def _feature_sql(name: str, kind: str, position: int | None) -> str:
    value = (f"vals[{position}]" if position is not None else
             f"vals[list_position(cols, {_literal(name)})]")
    if kind == "VARCHAR":
        return (f"(CASE WHEN json_type({value}) = 'VARCHAR' THEN json_extract_string({value}, "
                f"'$') ELSE CAST({value} AS VARCHAR) END)")
    return f"TRY_CAST({value} AS {kind})"
