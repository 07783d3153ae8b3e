"""InferenceJob: validation (every problem named at once), defaults, and the pure plan."""

import pytest

from deploy.control.job_plan import (
    MODE_FULL,
    MODE_RETRY,
    Counts,
    batches,
    call_outcome,
    errors_name,
    final_state,
    merge_rows,
    object_id,
    object_of_errors,
    over_error_ceiling,
    overlap_error,
    parse_location,
    plan_objects,
    relative_names,
    request_id,
    shard_of,
)
from deploy.control.jobs import own_deployment_id, parse_job
from deploy.control.resource import ValidationError
from deploy.control.store import Conflict, Store
from gateway.request_id import REQUEST_ID_PATTERN

PREDICTORS = {"wine-v1": "odahu-ml-server", "wine-triton": "triton"}.get


def job(**spec):
    base = {"deployment": "wine-v1", "input": "s3://data/in/", "output": "s3://data/out/",
            "format": "csv"}
    base.update(spec)
    return {"kind": "InferenceJob", "id": "wine-nightly", "spec": base}


def test_defaults_and_round_trip():
    parsed = parse_job(job(), PREDICTORS)
    assert parsed.spec.to_dict() == {
        "deployment": "wine-v1", "input": "s3://data/in/", "output": "s3://data/out/",
        "format": "csv", "batchSize": 256, "concurrency": 4, "retries": 3, "parallelism": 1,
        "maxErrorRate": 0.1}
    again = parse_job({"id": "wine-nightly", "spec": parsed.spec.to_dict()}, PREDICTORS)
    assert again.spec == parsed.spec and again.deployment_id == "wine-v1"


def test_model_uri_job_runs_in_a_deployment_of_its_own():
    parsed = parse_job(job(deployment=None, modelUri="file:///m/wine-v1", replicas=2),
                       PREDICTORS)
    assert parsed.deployment_id == "wine-nightly-job"
    assert parsed.spec.to_dict()["modelUri"] == "file:///m/wine-v1"
    assert own_deployment_id("a" * 63) == "a" * 59 + "-job"


@pytest.mark.parametrize(("spec", "fragment"), [
    ({"format": "xml"}, "format 'xml' is not supported; use one of jsonl, csv, parquet, "
                        "odahu-json"),
    ({"deployment": "nope"}, 'deployment: entity "nope" is not found'),
    ({"deployment": "wine-triton"}, "uses the triton predictor"),
    ({"deployment": None}, "name the model: deployment"),
    ({"modelUri": "file:///m"}, "give either deployment or modelUri, not both"),
    ({"output": "s3://data/in/out/"}, "the output s3://data/in/out/ is inside the input"),
    ({"input": "s3://data/in", "output": "s3://data/input-scored/"}, "is inside the input"),
    ({"input": "/data/wine.csv", "output": "/data"}, "the input's own folder"),
    ({"input": "ftp://x/y"}, "input scheme 'ftp' is not supported"),
    ({"input": "relative/in/"}, "must be absolute"),
    ({"input": "s3:///in/"}, "names no bucket"),
    ({"output": None}, "output is required"),
    ({"batchSize": 0}, "batchSize must be an integer from 1 to 100000, got 0"),
    ({"concurrency": True}, "concurrency must be an integer"),
    ({"maxErrorRate": 2}, "maxErrorRate must be a number from 0 to 1"),
    ({"replicas": 2}, "replicas goes with modelUri"),
    ({"shards": 2}, "unknown spec field(s): shards"),
    ({"dropColumns": "quality"}, "dropColumns must be a list of column names"),
])
def test_invalid_jobs_are_refused_naming_the_problem(spec, fragment):
    with pytest.raises(ValidationError) as err:
        parse_job(job(**spec), PREDICTORS)
    assert fragment in str(err.value)
    assert str(err.value).startswith("Validation of inference job is failed: ")


def test_every_problem_is_named_at_once():
    with pytest.raises(ValidationError) as err:
        parse_job({"id": "Bad", "spec": {"format": "xml", "batchSize": -1}}, PREDICTORS)
    assert len(err.value.errors) >= 5  # id, model, format, input, output, batchSize


def test_locations():
    loc = parse_location("s3://bucket/in/part-")
    assert (loc.scheme, loc.bucket, loc.folder, loc.name_prefix) == ("s3", "bucket", "in/",
                                                                     "part-")
    assert str(parse_location("gs://b/out").as_folder()) == "gs://b/out/"
    assert parse_location("file:///srv/data/x.csv").folder == "/srv/data/"
    assert overlap_error("s3://a/in/", "s3://b/in/out/") is None  # another bucket


def test_relative_names_skip_hidden_objects_and_other_prefixes():
    names = ["part-1.csv", "part-0.csv", "_SUCCESS", ".part-0.csv.crc", "sub/part-2.csv",
             "sub/_tmp/x.csv", "other.csv", "dir/"]
    assert relative_names(names, "part-") == ["part-0.csv", "part-1.csv"]
    assert relative_names(names, "") == ["other.csv", "part-0.csv", "part-1.csv",
                                         "sub/part-2.csv"]


def test_errors_names_map_back_to_their_object():
    assert errors_name("sub/a.csv") == "_errors/sub/a.csv.jsonl"
    assert object_of_errors("_errors/sub/a.csv.jsonl") == "sub/a.csv"
    assert object_of_errors("a.csv") is None


def test_shards_are_stable_and_cover_everything():
    names = [f"part-{i}.csv" for i in range(200)]
    shards = [shard_of(n, 3) for n in names]
    assert shards == [shard_of(n, 3) for n in names] and set(shards) == {0, 1, 2}
    taken = [t.name for s in range(3) for t in plan_objects(names, [], [], s, 3, False).todo]
    assert sorted(taken) == sorted(names)


def test_plan_skips_committed_objects_and_retries_only_listed_ones():
    names = ["a.csv", "b.csv", "c.csv", "d.csv"]
    plan = plan_objects(names, outputs=["a.csv", "b.csv"], errors=["b.csv", "c.csv"],
                        shard=0, shards=1, retry_errors=False)
    assert [(t.name, t.mode) for t in plan.todo] == [("c.csv", MODE_FULL), ("d.csv", MODE_FULL)]
    assert plan.done == ("a.csv", "b.csv")
    plan = plan_objects(names, outputs=["a.csv", "b.csv"], errors=["b.csv", "c.csv"],
                        shard=0, shards=1, retry_errors=True)
    assert [(t.name, t.mode) for t in plan.todo] == [
        ("b.csv", MODE_RETRY), ("c.csv", MODE_FULL), ("d.csv", MODE_FULL)]
    assert plan.done == ("a.csv",)


def test_request_ids_are_deterministic_and_valid():
    assert request_id("wine-nightly", "part-0.csv", 256) == "wine-nightly-part-0.csv-256"
    long_name = "deep/folder with spaces/" + "x" * 200 + ".csv"
    rid = request_id("j" * 63, long_name, 1_999_999_999)
    assert REQUEST_ID_PATTERN.match(rid) and rid == request_id("j" * 63, long_name, 1_999_999_999)
    assert object_id("a/b.csv") != object_id("a_b.csv")  # sanitized names stay apart


def test_batches_and_merge():
    assert batches(5, 2) == [(0, 2), (2, 4), (4, 5)]
    merged = merge_rows({0: [0, "a"], 2: [2, "c"]}, {1: [1, "b"], 2: [2, "c2"]})
    assert merged == [[0, "a"], [1, "b"], [2, "c2"]]


@pytest.mark.parametrize(("status", "outcome"), [
    (200, "ok"), (400, "split"), (413, "split"), (422, "split"), (500, "split"),
    (401, "fatal"), (403, "fatal"), (404, "fatal"), (408, "retry"), (429, "retry"),
    (502, "retry"), (503, "retry"), (504, "retry")])
def test_call_outcomes(status, outcome):
    assert call_outcome(status) == outcome


def test_how_a_job_ends():
    clean = Counts(objects_total=3, objects_done=3, rows_total=100, rows_done=100)
    assert final_state(clean, 0.1) == ("Succeeded", "")
    some = Counts(objects_total=4, objects_done=3, objects_failed=1, rows_total=100,
                  rows_done=99, rows_failed=1)
    state, reason = final_state(some, 0.1)
    assert state == "SucceededWithErrors"
    assert reason == ("1 of 100 rows failed; 1 of 4 objects could not be read (listed in "
                      "_errors/ in the output)")
    many = Counts(objects_total=1, objects_done=1, rows_total=100, rows_done=80, rows_failed=20)
    assert final_state(many, 0.1)[0] == "Failed"
    assert over_error_ceiling(many, 0.25) is None and over_error_ceiling(many, 0.1)
    unreadable = Counts(objects_total=2, objects_failed=2)
    assert final_state(unreadable, 0.1) == (
        "Failed", "none of the 2 input objects could be read")


def test_store_keeps_jobs_and_refuses_resuming_a_running_one(tmp_path):
    store = Store(tmp_path / "state.db")
    created = store.create_job(parse_job(job(), PREDICTORS))
    assert created.status.state == "Scheduling" and created.generation > 0
    with pytest.raises(Conflict):
        store.resume_job("wine-nightly", False, created.submitter)
    created.status.state = "Failed"
    assert store.set_job_status("wine-nightly", created.generation, created.status)
    resumed = store.resume_job("wine-nightly", True, created.submitter)
    assert resumed.generation == created.generation + 1 and resumed.retry_errors
    assert resumed.status.state == "Scheduling"
    assert not store.set_job_status("wine-nightly", created.generation, created.status)
    store.delete_job("wine-nightly")
    assert store.list_jobs() == []
    store.close()
