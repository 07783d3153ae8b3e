"""The export on Spark (``--engine spark``, the ``spark`` extra): the same rows as the DuckDB
engine, for data sets larger than one machine.

Spark reads the JSON Lines files, keeps one record per Request-ID and deployment and the
latest feedback per Request-ID (window functions), joins them, makes one row per input row
(``posexplode``) and writes hive partitions, one file per hour. What one record holds is read
by the plain functions of :mod:`feedback.dataset.rows` (Python UDFs), so both engines answer
the same values. Here Spark runs in local mode on this machine (``MLGATE_SPARK_MASTER`` names
another master); the records are local files, fetched from the bucket first when needed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ..spec import REGRESSION
from . import rows
from .duck import _sql_type
from .query import PARTITION_COLUMNS, ExportQuery, MissingExtra, feature_column
from .sources import Sources

TIME_PATTERN = "yyyy-MM-dd HH:mm:ss Z"


def session() -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise MissingExtra("--engine spark needs pyspark: pip install 'mlgate[spark]'") from exc
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = (SparkSession.builder.appName("mlgate-dataset-export")
             .master(os.environ.get("MLGATE_SPARK_MASTER", "local[*]"))
             .config("spark.ui.enabled", "false")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _read(spark: Any, files: list[Path], schema: str) -> Any:
    if not files:
        return spark.createDataFrame([], schema)
    return spark.read.schema(schema).json([str(f) for f in files])


def spark_engine(sources: Sources, query: ExportQuery, staging: Path, fmt: str) -> int:
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    spark = session()
    value_type = T.DoubleType() if query.task == REGRESSION else T.StringType()
    task, prediction, label = query.task, query.prediction, query.label
    predict = F.udf(lambda c: rows.prediction_rows(c, prediction, task), T.ArrayType(value_type))
    labels = F.udf(lambda p, n: rows.label_rows(p, n, task, label), T.ArrayType(value_type))
    features = F.udf(rows.feature_rows, T.ArrayType(T.MapType(T.StringType(), T.StringType())))
    types = F.udf(rows.feature_types, T.MapType(T.StringType(), T.ArrayType(T.StringType())))
    names = F.udf(rows.feature_names, T.ArrayType(T.StringType()))

    def bounds(df: Any) -> Any:
        if query.first_hour is not None:
            df = df.where(F.col("time") >= query.first_hour.strftime("%Y-%m-%d %H:%M:%S"))
        if query.end_hour is not None:
            df = df.where(F.col("time") < query.end_hour.strftime("%Y-%m-%d %H:%M:%S"))
        if query.deployment_id is not None:
            df = df.where(F.col("deployment_id") == query.deployment_id)
        return df

    def first(df: Any, keys: list[str], *order: Any) -> Any:
        w = Window.partitionBy(*keys).orderBy(*order)
        return df.withColumn("_n", F.row_number().over(w)).where("_n = 1").drop("_n")

    preds = _read(spark, sources.predictions,
                  "request_id string, model_name string, model_version string, "
                  "response_content string, time string, response_status string, "
                  "deployment_id string")
    preds = preds.where(F.col("response_status").startswith("2") &
                        F.col("deployment_id").isNotNull() & F.col("request_id").isNotNull() &
                        (F.col("model_name") == query.model_name))
    if query.model_version:
        preds = preds.where(F.col("model_version") == query.model_version)
    preds = first(bounds(preds), ["request_id", "deployment_id"], "time", "response_content")
    preds = preds.withColumn("values", predict("response_content")).where("values IS NOT NULL")
    reqs = first(bounds(_read(spark, sources.requests,
                              "request_id string, deployment_id string, "
                              "request_content string, time string")
                       .where(F.col("request_id").isNotNull())),
                 ["request_id", "deployment_id"], "time")
    reqs = reqs.select("request_id", "deployment_id",
                       features("request_content").alias("frows"),
                       types("request_content").alias("ftypes"),
                       names("request_content").alias("fnames"))
    fb = _read(spark, sources.feedback, "request_id string, model_name string, "
               "payload string, time string, time_us long")
    fb = fb.where((F.col("model_name") == query.model_name) & F.col("request_id").isNotNull())
    fb = fb.withColumn("_us", F.coalesce("time_us", F.unix_micros(
        F.to_timestamp("time", TIME_PATTERN))))
    fb = first(fb, ["request_id"], F.col("_us").desc(), F.col("payload").desc()).select(
        "request_id", F.get_json_object("payload", "$.json").alias("feedback"),
        F.to_timestamp("time", TIME_PATTERN).alias("feedback_time"))
    joined = (preds.select("request_id", "deployment_id", "model_name", "model_version",
                           F.to_timestamp("time", TIME_PATTERN).alias("time"),
                           F.posexplode("values").alias("row", "prediction"),
                           F.size("values").alias("n"))
              .join(reqs, ["request_id", "deployment_id"], "left")
              .join(fb, ["request_id"], "left")
              .withColumn("labels", labels("feedback", "n")))
    joined = joined.withColumn("fmap", F.when(F.col("frows").isNotNull(),
                                              F.element_at("frows", F.col("row") + 1)))
    kinds: dict[str, set[str]] = {}
    for record in joined.select(F.explode("ftypes")).distinct().collect():
        kinds.setdefault(record["key"], set()).update(record["value"] or [])
    positions = (joined.select(F.posexplode("fnames").alias("pos", "name"))
                 .groupBy("name").agg(F.min("pos").alias("pos")).collect())
    order = [r["name"] for r in sorted(positions, key=lambda r: (r["pos"], r["name"]))
             if r["name"] in kinds]
    columns = [F.col("request_id"), F.col("row").cast("long").alias("row"),
               F.col("deployment_id"), F.col("time")]
    for name in order:
        value = F.col("fmap").getItem(name)
        kind = _sql_type(kinds[name])
        cast = {"BIGINT": "long", "DOUBLE": "double", "BOOLEAN": "boolean"}.get(kind)
        columns.append((value.cast(cast) if cast else value).alias(feature_column(name)))
    columns += [F.col("prediction"),
                F.element_at("labels", F.col("row") + 1).alias("label"),
                F.col("feedback_time"), F.col("feedback"), F.col("model_name"),
                F.col("model_version"), F.year("time").alias("year"),
                F.month("time").alias("month"), F.dayofmonth("time").alias("day"),
                F.hour("time").alias("hour")]
    out = joined.select(*columns)
    if query.labelled_only:
        out = out.where(F.col("label").isNotNull())
    out = out.cache()
    count = out.count()
    if count:
        keys = [*PARTITION_COLUMNS, "hour"]
        writer = out.repartition(*keys).write.mode("overwrite").partitionBy(*keys)
        path = str(staging)
        writer.parquet(path) if fmt == "parquet" else writer.json(path)
    out.unpersist()
    return count
