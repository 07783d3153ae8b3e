"""Training data sets from a running stack's records: ``mlgate dataset export`` (DuckDB and
Spark engines, Parquet and JSON Lines, a directory and an S3 bucket) and ``GET
/api/v1/dataset``; the output read by DuckDB, pandas and Spark without options."""

from __future__ import annotations

import io
import math
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.conftest import EXAMPLES, ROOT, SEED_COLUMNS, SEED_ROW
from tests.e2e.test_quality import invoke, send_feedback, settle, write_config
from tests.storage.servers import S3_ENV

pytestmark = pytest.mark.e2e
CONFIG = """\
storage:
  flush_interval: 0.2
quality:
  poll_interval: 0.5
"""


@pytest.fixture(scope="module")
def stack(mlgate_module, demo_models, tmp_path_factory):
    proc = mlgate_module(["-f", str(EXAMPLES / "wine-v1.yaml"), "--config",
                          write_config(tmp_path_factory, CONFIG)])
    proc.wait_state("wine-v1", "Ready")
    with proc.client() as client:
        for i in range(6):
            invoke(client, "wine-v1", f"ds-{i}")
        two = client.post("/model/wine-v1/api/model/invoke", headers={"Request-ID": "ds-two"},
                          json={"columns": SEED_COLUMNS, "data": [SEED_ROW, SEED_ROW]})
        assert two.status_code == 200
        # MLflow's protocol: dataframe_split in, {"predictions": [...]} out
        mlflow = client.post("/model/wine-v1/invocations", headers={"Request-ID": "ds-mlflow"},
                             json={"dataframe_split": {"columns": SEED_COLUMNS,
                                                       "data": [SEED_ROW]}})
        assert mlflow.status_code == 200 and len(mlflow.json()["predictions"]) == 1
        # records whose contents are not JSON are no rows (and break nothing): a document
        # the gateway answers itself (no request body), a body the model refuses
        assert client.get("/model/wine-v1/api/model/info").status_code == 200
        assert client.post("/model/wine-v1/api/model/invoke", content=b"not json",
                           headers={"Content-Type": "text/plain"}).status_code == 400
        for i in range(4):
            send_feedback(client, f"ds-{i}", {"truthful": 5 + i})
        send_feedback(client, "ds-0", {"truthful": 8})  # a correction
        send_feedback(client, "ds-5", {"truthful": "?"})  # invalid: no label in the set
        send_feedback(client, "ds-two", {"truthful": [6, 7]})
        send_feedback(client, "ds-mlflow", {"truthful": 6})
        settle(client, "wine-v1", lambda t: t["labelled"] == 6, "the labels")
    return proc


def export(stack, out, *args: str, env: dict | None = None) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "dataset", "export", "--model", "wine",
         "--data-dir", str(stack.data_dir), "--out", str(out), *args], cwd=ROOT,
        capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr
    assert "row(s)" in result.stderr
    return result.stdout.splitlines()


@pytest.fixture(scope="module")
def parquet(stack, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dataset") / "wine"
    files = export(stack, out, "--format", "parquet")
    assert len(files) >= 1 and all(f.endswith(".parquet") for f in files)
    return out


def labelled_mae(df: pd.DataFrame) -> float:
    rows = df[df["label"].notna()]
    return float((rows["prediction"] - rows["label"]).abs().mean())


def test_the_parquet_holds_one_row_per_input_row_with_features_prediction_and_label(
        stack, parquet):
    df = pd.read_parquet(parquet).sort_values(["request_id", "row"])
    assert len(df) == 9  # seven one-row requests and one of two rows
    assert list(df.columns[:4]) == ["request_id", "row", "deployment_id", "time"]
    for name, value in zip(SEED_COLUMNS, SEED_ROW, strict=True):  # typed from the values
        assert df[name].dtype == ("int64" if isinstance(value, int) else "float64"), name
    assert set(df.columns) >= {"prediction", "label", "feedback_time", "feedback",
                               "model_name", "model_version", "year", "month", "day"}
    by_id = {(r.request_id, r.row): r for r in df.itertuples()}
    assert by_id[("ds-0", 0)].label == 8.0  # the correction, not the first label
    assert math.isnan(by_id[("ds-5", 0)].label) and by_id[("ds-5", 0)].feedback == \
        '{"truthful":"?"}'
    assert [by_id[("ds-two", n)].label for n in (0, 1)] == [6.0, 7.0]
    assert str(by_id[("ds-0", 0)].model_version) == "1.0"
    # the MLflow call is a row like the others: its features, its prediction, its label
    mlflow, seed = (df[df["request_id"] == rid].iloc[0] for rid in ("ds-mlflow", "ds-1"))
    assert list(mlflow[SEED_COLUMNS]) == list(seed[SEED_COLUMNS]) == SEED_ROW
    assert mlflow["prediction"] == seed["prediction"] and mlflow["label"] == 6.0
    with stack.client() as client:
        api = client.get("/api/v1/model/deployment/wine-v1/quality",
                         params={"since": "24h"}).json()["totals"]
    assert math.isclose(labelled_mae(df), api["mae"], abs_tol=1e-6)
    assert (df["label"].notna()).sum() == api["count"]


def test_duckdb_and_spark_read_the_tree_without_options(parquet):
    [rows] = duckdb.sql(f"SELECT count(*), count(label), min(model_name), min(year) "
                        f"FROM '{parquet}/**/*.parquet'").fetchall()
    assert rows[:3] == (9, 7, "wine") and rows[3] >= 2026
    from feedback.dataset.spark import session

    spark = session()
    df = spark.read.parquet(str(parquet))
    assert df.count() == 9
    assert {"model_name", "model_version", "year", "month", "day", "label"} <= set(df.columns)
    assert df.where("label IS NOT NULL").count() == 7


def test_re_running_a_range_rewrites_the_same_files_and_since_exports_only_new_hours(
        stack, parquet, tmp_path):
    before = sorted(p.relative_to(parquet) for p in parquet.rglob("*.parquet"))
    again = export(stack, parquet, "--format", "parquet")
    after = sorted(p.relative_to(parquet) for p in parquet.rglob("*.parquet"))
    assert after == before and len(again) == len(before)
    assert len(pd.read_parquet(parquet)) == 9  # no duplicates
    first = pd.read_parquet(parquet)["time"].min()
    later = export(stack, parquet, "--format", "parquet", "--since",
                   (first + pd.Timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    assert later == []  # nothing after the first hour yet
    assert len(pd.read_parquet(parquet)) == 9


def test_labelled_only_and_json_lines(stack, tmp_path):
    files = export(stack, tmp_path / "jsonl", "--format", "jsonl", "--labelled-only")
    assert files and all(f.endswith(".jsonl") for f in files)
    rows = duckdb.sql(f"SELECT request_id, label FROM read_json_auto('{tmp_path}/jsonl/**/*.jsonl')"
                      " ORDER BY request_id, label").fetchall()
    assert len(rows) == 7 and all(label is not None for _, label in rows)


def test_the_spark_engine_writes_the_same_rows(stack, parquet, tmp_path):
    export(stack, tmp_path / "spark", "--format", "parquet", "--engine", "spark")
    keys = ["request_id", "row"]
    duck = pd.read_parquet(parquet).sort_values(keys).reset_index(drop=True)
    spark = pd.read_parquet(tmp_path / "spark").sort_values(keys).reset_index(drop=True)
    assert list(spark.columns) == list(duck.columns)
    assert spark.astype(str).equals(duck.astype(str))
    assert sorted(p.relative_to(tmp_path / "spark") for p in (tmp_path / "spark").rglob(
        "*.parquet")) == sorted(p.relative_to(parquet) for p in parquet.rglob("*.parquet"))


def test_an_export_to_s3(stack, s3_server):
    """Records in the local storage, the data set to a bucket (moto, named explicitly)."""
    bucket = s3_server.new_bucket()
    env = {**os.environ, **S3_ENV, "AWS_ENDPOINT_URL": s3_server.server.url}
    files = export(stack, f"s3://{bucket}/sets/wine", "--format", "parquet",
                   "--out-endpoint-url", s3_server.server.url, env=env)
    keys = s3_server.keys(bucket)
    assert sorted(files) == sorted(keys) and all(
        k.startswith("sets/wine/model_name=wine/model_version=1.0/year=") for k in keys)
    df = pd.read_parquet(io.BytesIO(s3_server.read(bucket, keys[0])))
    assert "prediction" in df.columns


def test_the_api_streams_the_data_set_for_the_sdk(stack):
    with stack.client() as client:
        resp = client.get("/api/v1/dataset", params={"model": "wine", "labelled_only": "true"})
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "application/vnd.apache.parquet"
        df = pd.read_parquet(io.BytesIO(resp.content))
        jsonl = client.get("/api/v1/dataset", params={"model": "wine", "format": "jsonl"})
        bad = client.get("/api/v1/dataset", params={"format": "csv", "since": "soon"})
    assert len(df) == 7 and set(df["model_name"]) == {"wine"} and "year" not in df.columns
    assert len(jsonl.text.splitlines()) == 9
    assert bad.status_code == 400
    assert "model is required" in bad.json()["message"]
    assert "format must be one of parquet, jsonl" in bad.json()["message"]
    viewer = stack.mint_token(["viewer"])
    with stack.client(headers={"Authorization": f"Bearer {viewer}"}) as client:
        refused = client.get("/api/v1/dataset", params={"model": "wine"})
    assert refused.status_code == 403
