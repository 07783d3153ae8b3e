"""Inference jobs against a real ``mlgate up`` and the real wine model, inputs in local
directories and in moto's S3 server: 3 objects, 20,000 rows, one malformed row, one
unparseable object. Outputs are compared row by row with ``mlflow.pyfunc`` predicting
the same rows in this process; a runner (or mlgate itself) killed halfway and resumed
writes every row exactly once."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import orjson
import psutil
import pytest

from tests.conftest import EXAMPLES, ROOT, wait_until
from tests.storage.servers import S3_ENV

pytestmark = pytest.mark.e2e

ROWS = 20_000
SIZES = {"part-0.csv": 7000, "part-1.csv": 7000, "part-2.csv": 6000}
MALFORMED = ("part-1.csv", 1234)  # "citric acid" is "abc" in this row
UNREADABLE = "broken.csv"
TERMINAL = ("Succeeded", "SucceededWithErrors", "Failed")


def wine_rows() -> tuple[list[str], list[list[str]]]:
    with open(EXAMPLES / "wine-quality.csv", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)[:-1]  # without "quality"
        rows = [r[:-1] for r in reader]
    return header, rows


def dataset(sizes: dict[str, int] = SIZES) -> tuple[list[str], dict[str, list[list[str]]]]:
    """Rows as CSV text, per object: the wine data repeated; one field made malformed."""
    header, rows = wine_rows()
    out, at = {}, 0
    for name, size in sizes.items():
        out[name] = [list(rows[(at + i) % len(rows)]) for i in range(size)]
        at += size
    name, row = MALFORMED
    if name in out:
        out[name][row][header.index("citric acid")] = "abc"
    return header, out


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue().encode()


def jsonl_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    def value(text: str):
        try:
            return float(text)
        except ValueError:
            return text
    return b"".join(orjson.dumps(dict(zip(header, map(value, r), strict=True))) + b"\n"
                    for r in rows)


@pytest.fixture(scope="module")
def expected(demo_models) -> dict[str, dict[int, float]]:
    """pyfunc's prediction of every well-formed row, in this process, per object and row."""
    import mlflow.pyfunc
    import pandas as pd

    header, data = dataset()
    model = mlflow.pyfunc.load_model(str(demo_models / "wine-v1"))
    out = {}
    for name, rows in data.items():
        good = [i for i in range(len(rows)) if (name, i) != MALFORMED]
        frame = pd.DataFrame([[float(v) for v in rows[i]] for i in good], columns=header)
        out[name] = dict(zip(good, (float(p) for p in model.predict(frame)), strict=True))
    return out


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("jobs")


def stack_env(base: Path, s3_url: str = "", **extra: str) -> dict[str, str]:
    env = {"MLGATE_BATCH_LOCAL_ROOTS": str(base), **extra}
    if s3_url:
        env.update(S3_ENV, MLGATE_BATCH_S3_ENDPOINT_URL=s3_url)
    return env


@pytest.fixture(scope="module")
def stack(mlgate_module, demo_models, s3_server, base):
    return mlgate_module(["-f", str(EXAMPLES / "wine-v1.yaml")],
                         env=stack_env(base, s3_server.url))


def write_inputs(folder: Path, sizes: dict[str, int] = SIZES) -> None:
    header, data = dataset(sizes)
    folder.mkdir(parents=True)
    for name, rows in data.items():
        (folder / name).write_bytes(csv_bytes(header, rows))
    (folder / UNREADABLE).write_bytes(b"\xff\xfe\x00 this is no CSV \x81")
    (folder / "_SUCCESS").write_bytes(b"")  # hidden: never read


def cli(stack, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLGATE_URL": stack.url, "MLGATE_TOKEN": stack.token}
    result = subprocess.run([sys.executable, "-m", "deploy.cli", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def job_manifest(path: Path, job_id: str, **spec) -> Path:
    import yaml

    path.write_text(yaml.safe_dump({"kind": "InferenceJob", "id": job_id, "spec": spec}))
    return path


def get_job(stack, job_id: str) -> dict:
    with stack.client() as client:
        resp = client.get(f"/api/v1/batch/job/{job_id}")
    resp.raise_for_status()
    return resp.json()


def wait_ended(stack, job_id: str, timeout: float = 300) -> dict:
    return wait_until(lambda: (j := get_job(stack, job_id))["status"]["state"] in TERMINAL and j,
                      timeout, what=f"job {job_id} to end")


def outputs_by_row(data: bytes, fmt: str) -> tuple[list[str], list[dict]]:
    if fmt == "csv":
        reader = csv.DictReader(io.StringIO(data.decode()))
        return list(reader.fieldnames or []), list(reader)
    rows = [orjson.loads(line) for line in data.splitlines()]
    return (list(rows[0]) if rows else []), rows


def check_outputs(read, fmt: str, job_id: str, expected) -> dict[str, list[dict]]:
    """Every well-formed row once, in input order, equal to pyfunc's prediction; errors
    listed with their row, input and the model's message. ``read(name)`` -> bytes."""
    errors = {}
    for name, predictions in expected.items():
        columns, rows = outputs_by_row(read(name), fmt)
        assert columns == ["row", "request_id", "quality"]
        ids = [int(r["row"]) for r in rows]
        assert ids == sorted(predictions), f"{name}: rows missing, repeated or out of order"
        for r in rows:
            row = int(r["row"])
            assert float(r["quality"]) == predictions[row], (name, row)
            first = int(r["request_id"].rsplit("-", 1)[1])
            assert r["request_id"] == f"{job_id}-{name}-{first}" and first <= row
        errors[name] = [orjson.loads(line) for line in read(f"_errors/{name}.jsonl").splitlines()] \
            if name == MALFORMED[0] else []
    [refused] = errors[MALFORMED[0]]
    assert refused["row"] == MALFORMED[1] and refused["status"] == 400
    assert refused["input"]["citric acid"] == "abc"
    assert 'column "citric acid": expected a number, got "abc"' in refused["error"]
    assert refused["request_id"] == f"{job_id}-{MALFORMED[0]}-{MALFORMED[1]}"
    [unreadable] = [orjson.loads(line) for line in read(f"_errors/{UNREADABLE}.jsonl")
                    .splitlines()]
    assert unreadable["row"] is None and "cannot read the object" in unreadable["error"]
    return errors


def done_status(job: dict) -> None:
    status = job["status"]
    assert status["state"] == "SucceededWithErrors", status
    assert (status["rowsTotal"], status["rowsDone"], status["rowsFailed"]) == (ROWS, ROWS - 1, 1)
    assert (status["objectsTotal"], status["objectsDone"], status["objectsFailed"]) == (4, 3, 1)
    assert status["reason"] == ("1 of 20000 rows failed; 1 of 4 objects could not be read "
                                "(listed in _errors/ in the output)")


def test_local_folder_through_the_cli_equals_pyfunc_row_by_row(stack, base, expected):
    write_inputs(base / "local" / "in")
    manifest = job_manifest(base / "local" / "job.yaml", "wine-local", deployment="wine-v1",
                            input="in/", output="out/", format="csv", batchSize=500)
    result = cli(stack, "job", "run", "-f", str(manifest), "--wait")
    lines = result.stdout.splitlines()
    assert lines[0] == "Inference job wine-local created"
    assert any(" rows (" in line and "rows/s" in line and "ETA" in line for line in lines)
    assert lines[-1] == ("Inference job wine-local SucceededWithErrors: 19999 rows predicted, 1 "
                         f"failed, 3 of 4 objects written to {base / 'local' / 'out'}/")
    assert "mlgate: 1 of 20000 rows failed" in result.stderr
    done_status(get_job(stack, "wine-local"))
    out = base / "local" / "out"
    check_outputs(lambda name: (out / name).read_bytes(), "csv", "wine-local", expected)
    assert sorted(p.name for p in out.iterdir()) == ["_errors", *sorted(SIZES)]
    table = cli(stack, "job", "get", "wine-local", "-o", "table").stdout
    assert "wine-local  SucceededWithErrors  20000/20000  2" in table


def test_batch_predictions_are_logged_like_online_calls_and_take_feedback(stack, base):
    rid = "wine-local-part-0.csv-500"
    with stack.client() as client:
        fb = client.post("/feedback/model/", json={"truthful": [6] * 500}, headers={
            "x-model-name": "wine", "x-model-version": "1.0", "Request-ID": rid})
        assert fb.status_code == 200 and fb.json()["registered"] is True

    def records(kind: str) -> list[dict]:
        root = stack.data_dir / "storage" / kind / "wine" / "1.0"
        return [orjson.loads(line) for path in root.rglob("*.json")
                for line in path.read_bytes().splitlines()]

    logged = wait_until(lambda: [r for r in records("request_response")
                                 if r["request_id"] == rid], 30, what="the call's record")
    [record] = logged
    assert record["deployment_id"] == "wine-v1" and record["response_status"] == "200"
    assert record["request_uri"] == "/model/wine-v1/api/model/invoke"
    assert record["request_http_headers"]["x-mlgate-job"] == "wine-local"
    assert len(orjson.loads(record["request_content"])["data"]) == 500
    [body] = [r for r in records("response_body") if r["request_id"] == rid]
    assert len(orjson.loads(body["response_content"])["prediction"]) == 500
    wait_until(lambda: [r for r in records("feedback") if r["request_id"] == rid], 30,
               what="the feedback record")
    with stack.client() as client:
        metrics = client.get("/metrics").text
    assert 'mlgate_batch_rows_total{job="wine-local",result="predicted"} 19999.0' in metrics
    assert 'mlgate_batch_job_state{job="wine-local",state="SucceededWithErrors"} 1.0' in metrics
    assert 'mlgate_batch_job_rows{job="wine-local",kind="total"} 20000.0' in metrics


def test_s3_prefix_in_jsonl_equals_pyfunc_row_by_row(stack, s3_server, expected):
    bucket = s3_server.new_bucket()
    header, data = dataset()
    for name, rows in data.items():
        s3_server.client.put_object(Bucket=bucket, Key=f"in/{name}", Body=jsonl_bytes(header,
                                                                                      rows))
    s3_server.client.put_object(Bucket=bucket, Key=f"in/{UNREADABLE}", Body=b"\xff\xfe\x00")
    job = {"kind": "InferenceJob", "id": "wine-s3", "spec": {
        "deployment": "wine-v1", "input": f"s3://{bucket}/in/", "output": f"s3://{bucket}/out/",
        "format": "jsonl", "batchSize": 256, "concurrency": 4}}
    with stack.client() as client:
        resp = client.post("/api/v1/batch/job", json=job)
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"]["state"] == "Scheduling"
    done_status(wait_ended(stack, "wine-s3"))
    check_outputs(lambda name: s3_server.read(bucket, f"out/{name}"), "jsonl", "wine-s3",
                  expected)
    assert sorted(s3_server.keys(bucket, "out/")) == sorted(
        [f"out/{n}" for n in SIZES] + ["out/_errors/broken.csv.jsonl",
                                       "out/_errors/part-1.csv.jsonl"])


def test_retry_errors_reruns_only_the_listed_rows_once_fixed(stack, base, expected):
    """The malformed row is fixed in the input, the unreadable object replaced: only they
    are read and predicted again; the fixed row joins its output in order."""
    header, rows = wine_rows()
    folder = base / "local" / "in"
    name, position = MALFORMED
    fixed = dataset()[1][name]
    fixed[position] = rows[(SIZES["part-0.csv"] + position) % len(rows)]
    (folder / name).write_bytes(csv_bytes(header, fixed))
    (folder / UNREADABLE).write_bytes(csv_bytes(header, rows[:10]))
    before = (base / "local" / "out" / "part-0.csv").stat().st_mtime_ns
    result = cli(stack, "job", "resume", "wine-local", "--retry-errors", "--wait")
    assert "Inference job wine-local Succeeded: 20010 rows predicted, 0 failed" in result.stdout
    job = get_job(stack, "wine-local")
    assert job["status"]["runs"] == 2 and job["status"]["objectsDone"] == 4
    out = base / "local" / "out"
    assert (out / "part-0.csv").stat().st_mtime_ns == before  # untouched: nothing listed
    assert not (out / "_errors").exists() or not list((out / "_errors").iterdir())
    _, got = outputs_by_row((out / name).read_bytes(), "csv")
    assert [int(r["row"]) for r in got] == list(range(SIZES[name]))
    assert got[position]["request_id"] == f"wine-local-{name}-{position}"
    assert len(outputs_by_row((out / UNREADABLE).read_bytes(), "csv")[1]) == 10


@pytest.mark.parametrize(("change", "status", "fragment"), [
    ({"format": "xml"}, 400, "format 'xml' is not supported"),
    ({"input": "empty/"}, 400, "holds no object"),
    ({"output": "in/scored/"}, 400, "is inside the input"),
    ({"deployment": "nope"}, 400, 'deployment: entity "nope" is not found'),
    ({"input": "/etc/"}, 400, "is outside the local directories jobs may use"),
    ({"input": "s3://no-such-bucket-here/in/"}, 400, "cannot read the bucket"),
    ({"output": "used/"}, 400, "already holds 1 object(s), e.g. old.csv"),
])
def test_bad_jobs_are_refused_before_anything_runs(stack, base, change, status, fragment):
    folder = base / "refused"
    (folder / "in").mkdir(parents=True, exist_ok=True)
    (folder / "in" / "a.csv").write_text("x\n1\n")
    (folder / "empty").mkdir(exist_ok=True)
    (folder / "used").mkdir(exist_ok=True)
    (folder / "used" / "old.csv").write_text("row,request_id,quality\n")
    spec = {"deployment": "wine-v1", "input": str(folder / "in") + "/",
            "output": str(folder / "out") + "/", "format": "csv"}
    for key, value in change.items():
        spec[key] = value if value.startswith(("/", "s3://")) or key in ("format",
                                                                          "deployment") \
            else str(folder / value)
    with stack.client() as client:
        resp = client.post("/api/v1/batch/job", json={"kind": "InferenceJob", "id": "refused",
                                                      "spec": spec})
        assert resp.status_code == status, resp.text
        assert fragment in resp.json()["message"], resp.json()
        assert client.get("/api/v1/batch/job/refused").status_code == 404
    assert not (folder / "out").exists() and (folder / "used").exists()


def test_viewer_may_read_jobs_but_not_run_them(stack):
    viewer = stack.mint_token(["viewer"])
    with stack.client(headers={"Authorization": f"Bearer {viewer}"}) as client:
        assert client.get("/api/v1/batch/job").status_code == 200
        resp = client.post("/api/v1/batch/job", json={"id": "x", "spec": {}})
        assert resp.status_code == 403 and "may not job:write" in resp.json()["message"]
        assert client.post("/api/v1/batch/job/wine-s3/resume").status_code == 403


def test_a_model_uri_job_runs_in_a_deployment_of_its_own(stack, base, demo_models):
    folder = base / "own"
    header, rows = wine_rows()
    (folder / "in").mkdir(parents=True)
    (folder / "in" / "wine.csv").write_bytes(csv_bytes(header, rows[:300]))
    manifest = job_manifest(folder / "job.yaml", "own-model", modelUri="file://" + str(
        demo_models / "wine-v2"), input="in/wine.csv", output="scored/", format="csv",
        batchSize=100)
    result = cli(stack, "job", "run", "-f", str(manifest), "--wait")
    assert "Inference job own-model Succeeded: 300 rows predicted" in result.stdout
    assert get_job(stack, "own-model")["status"]["deployment"] == "own-model-job"
    _, got = outputs_by_row((folder / "scored" / "wine.csv").read_bytes(), "csv")
    assert len(got) == 300
    wait_until(lambda: stack.deployment("own-model-job") is None, 60,
               what="the job's own deployment to be deleted")


# -- killed halfway --------------------------------------------------------------------------

KILL_SIZES = {f"part-{i}.csv": 2000 for i in range(10)}


def exactly_once(out: Path, sizes: dict[str, int]) -> None:
    for name, size in sizes.items():
        _, rows = outputs_by_row((out / name).read_bytes(), "csv")
        ids = Counter(int(r["row"]) for r in rows)
        errors = []
        if (out / "_errors" / f"{name}.jsonl").exists():
            errors = [orjson.loads(line)["row"] for line in
                      (out / "_errors" / f"{name}.jsonl").read_bytes().splitlines()]
        assert max(ids.values()) == 1, f"{name}: a row written twice"
        assert sorted([*ids, *errors]) == list(range(size)), f"{name}: rows missing"


def runner_pids(stack) -> list[int]:
    parent = psutil.Process(stack.proc.pid)
    return [p.pid for p in parent.children(recursive=True)
            if "deploy.batch" in " ".join(p.cmdline())]


def start_slow_job(stack, base: Path, job_id: str) -> Path:
    folder = base / job_id
    write_inputs(folder / "in", KILL_SIZES)
    manifest = job_manifest(folder / "job.yaml", job_id, deployment="wine-v1", input="in/",
                            output="out/", format="csv", batchSize=10, concurrency=1)
    cli(stack, "job", "run", "-f", str(manifest))
    wait_until(lambda: get_job(stack, job_id)["status"]["objectsDone"] >= 2, 120, 0.02,
               what="two objects committed")
    return folder / "out"


def test_runner_killed_halfway_then_resumed_writes_every_row_once(mlgate, demo_models, tmp_path):
    stack = mlgate(["-f", str(EXAMPLES / "wine-v1.yaml")],
                   env=stack_env(tmp_path, MLGATE_BATCH_RESTART_LIMIT="0"))
    out = start_slow_job(stack, tmp_path, "killed")
    [pid] = runner_pids(stack)
    os.kill(pid, signal.SIGKILL)
    job = wait_ended(stack, "killed")
    assert job["status"]["state"] == "Failed"
    assert "runner 0 exited with signal SIGKILL" in job["status"]["reason"]
    assert job["status"]["objectsDone"] < len(KILL_SIZES)  # it really stopped halfway
    result = cli(stack, "job", "resume", "killed", "--wait")
    assert "Inference job killed SucceededWithErrors" in result.stdout
    job = get_job(stack, "killed")
    assert job["status"]["runs"] == 2
    assert (job["status"]["rowsDone"], job["status"]["rowsFailed"]) == (19999, 1)
    exactly_once(out, KILL_SIZES)


def test_mlgate_killed_halfway_resumes_the_job_at_its_next_start(mlgate, demo_models, tmp_path):
    env = stack_env(tmp_path)
    stack = mlgate(["-f", str(EXAMPLES / "wine-v1.yaml")], env=env,
                   data_dir=tmp_path / "data")
    out = start_slow_job(stack, tmp_path, "restarted")
    [pid] = runner_pids(stack)
    stack.stop(signal.SIGKILL)
    wait_until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie",
               30, what="the runner to die with mlgate")
    again = mlgate(["-f", str(EXAMPLES / "wine-v1.yaml")], env=env, data_dir=tmp_path / "data")
    job = wait_ended(again, "restarted")
    assert job["status"]["state"] == "SucceededWithErrors", job["status"]
    assert job["status"]["runs"] == 2
    assert (job["status"]["rowsDone"], job["status"]["rowsFailed"]) == (19999, 1)
    exactly_once(out, KILL_SIZES)


@pytest.mark.parametrize("fmt", ["parquet", "odahu-json"])
def test_parquet_and_odahu_json_objects(stack, base, fmt, expected):
    import pyarrow as pa
    import pyarrow.parquet as pq

    header, data = dataset({"part-0.csv": 300})
    rows = [[float(v) for v in r] for r in data["part-0.csv"]]
    folder = base / fmt
    (folder / "in").mkdir(parents=True)
    if fmt == "parquet":
        sink = io.BytesIO()
        pq.write_table(pa.table({c: [r[i] for r in rows] for i, c in enumerate(header)}), sink)
        (folder / "in" / "part-0.csv").write_bytes(sink.getvalue())
    else:
        (folder / "in" / "part-0.csv").write_bytes(orjson.dumps({"columns": header,
                                                                  "data": rows}))
    with stack.client() as client:
        resp = client.post("/api/v1/batch/job", json={"kind": "InferenceJob", "id": f"j-{fmt}",
                                                      "spec": {
            "deployment": "wine-v1", "input": str(folder / "in") + "/",
            "output": str(folder / "out") + "/", "format": fmt, "batchSize": 64}})
    assert resp.status_code == 201, resp.text
    assert wait_ended(stack, f"j-{fmt}")["status"]["state"] == "Succeeded"
    data = (folder / "out" / "part-0.csv").read_bytes()
    if fmt == "parquet":
        table = pq.read_table(io.BytesIO(data))
        assert table.column_names == ["row", "request_id", "quality"]
        got = dict(zip(table.column("row").to_pylist(), table.column("quality").to_pylist(),
                       strict=True))
    else:
        doc = orjson.loads(data)
        assert doc["columns"] == ["row", "request_id", "quality"]
        got = {r[0]: r[2] for r in doc["data"]}
    assert got == {i: expected["part-0.csv"][i] for i in range(300)}
