"""The joiner's shell with a real writer and a local bucket: records through the tap and
through the bucket are counted once, other writers' objects are read, a spec change
rebuilds the figures."""

from __future__ import annotations

import asyncio

import orjson

from feedback import DeploymentInfo, Joiner, JoinerConfig, QualitySpec, deployment_document
from storage import FEEDBACK, LocalBackend, RecordWriter, WriterConfig, object_key
from tests.feedback.records import T0, T0_EPOCH, feedback, prediction

HOUR = 3600


def deployments(spec: QualitySpec | None = None):
    return lambda: [DeploymentInfo("wine-v1", "wine", "1.0", spec)]


def joiner_for(tmp_path, infos=None) -> Joiner:
    return Joiner(LocalBackend(tmp_path / "bucket"), "", infos or deployments(),
                  JoinerConfig(poll_interval=0.05, rescan_interval=0.05),
                  clock=lambda: T0_EPOCH + 600)


def totals(joiner: Joiner) -> dict:
    return deployment_document(joiner.index, "wine-v1", T0_EPOCH - HOUR, T0_EPOCH + HOUR,
                               60)["totals"]


def put(tmp_path, kind: str, records: list[dict], n: str) -> str:
    key = object_key("", kind, "wine", "1.0", T0, n)
    path = tmp_path / "bucket" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return key


async def until(check, timeout: float = 5.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_records_through_the_tap_and_then_the_bucket_count_once(tmp_path):
    joiner = joiner_for(tmp_path)
    writer = RecordWriter(LocalBackend(tmp_path / "bucket"), tmp_path / "spool",
                          WriterConfig(flush_interval=60), tap=joiner.tap,
                          tap_kinds=("response_body", FEEDBACK))
    await writer.start()
    await joiner.start()
    await until(lambda: joiner.complete)
    from tests.storage.test_records import exchange

    for i in range(3):
        writer.offer(exchange(request_id=f"t{i}", model_name="wine", deployment_id="wine-v1",
                              when=T0))
    await until(lambda: totals(joiner)["requests"] == 3)
    await writer.write_durable(FEEDBACK, feedback("t0", {"truthful": 7}), T0)
    await writer.flush()  # now in the bucket too, under the keys the tap announced
    await asyncio.sleep(0.3)  # several polls and rescans
    t = totals(joiner)
    assert (t["requests"], t["labelled"]) == (3, 1)
    await joiner.close()
    await writer.close()


async def test_other_writers_objects_are_read_once_even_when_uploaded_twice(tmp_path):
    joiner = joiner_for(tmp_path)
    await joiner.start()
    await until(lambda: joiner.complete)
    put(tmp_path, "response_body", [prediction("w1", 5.0), prediction("w2", 6.0)],
        "111111111111000001")
    put(tmp_path, FEEDBACK, [feedback("w1", {"truthful": 6})], "111111111111000002")
    await until(lambda: totals(joiner)["labelled"] == 1)
    put(tmp_path, "response_body", [prediction("w1", 5.0), prediction("w2", 6.0)],
        "111111111111000001")  # the same object again (a retried upload)
    await asyncio.sleep(0.3)
    t = totals(joiner)
    assert (t["requests"], t["labelled"], t["mae"]) == (2, 1, 1.0)
    await joiner.close()


async def test_a_restart_reads_the_bucket_back_to_the_same_figures(tmp_path):
    put(tmp_path, "response_body", [prediction(f"r{i}", 5.0 + i) for i in range(4)],
        "222222222222000001")
    put(tmp_path, FEEDBACK, [feedback("r1", {"truthful": 5}), feedback("r3", {"truthful": 9})],
        "222222222222000002")
    docs = []
    for _ in range(2):
        joiner = joiner_for(tmp_path)
        await joiner.start()
        await until(lambda j=joiner: j.complete)
        docs.append(totals(joiner))
        await joiner.close()
    assert docs[0] == docs[1] and docs[0]["labelled"] == 2 and docs[0]["mae"] == 1.0


async def test_a_changed_spec_rebuilds_the_figures_in_the_background(tmp_path):
    put(tmp_path, "response_body", [prediction("s1", 5.0)], "333333333333000001")
    put(tmp_path, FEEDBACK, [feedback("s1", {"truthful": 6, "other": 9})],
        "333333333333000002")
    spec: list[QualitySpec | None] = [None]
    joiner = joiner_for(tmp_path, lambda: [DeploymentInfo("wine-v1", "wine", "1.0", spec[0])])
    await joiner.start()
    await until(lambda: joiner.complete)
    assert totals(joiner)["invalid"] == {"ambiguous": 1}  # two numeric fields: no guess
    spec[0] = QualitySpec(label="$.other", configured=True,
                          defaults=("task", "prediction", "window"))
    await until(lambda: totals(joiner)["labelled"] == 1 and not joiner.rebuilding)
    assert totals(joiner)["mae"] == 4.0
    await joiner.close()


async def test_feedback_before_the_first_prediction_of_a_model_the_index_does_not_know_yet(
        tmp_path):
    """This process's feedback can reach the join before its prediction (exchanges are
    spooled in batches): the model is asked from the deployments, the feedback waits."""
    infos: list[DeploymentInfo] = []
    joiner = joiner_for(tmp_path, lambda: infos)
    infos.append(DeploymentInfo("wine-v1", "wine", "1.0"))  # Ready since the last poll
    joiner.tap(FEEDBACK, "feedback/k1.json", 0, [feedback("first", 6)])
    joiner.tap("response_body", "response_body/k2.json", 0, [prediction("first", 5.5)])
    assert totals(joiner)["labelled"] == 1
