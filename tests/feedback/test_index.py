"""The live join's rules on the pure index: records in, figures out, any order."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

import pytest

from feedback import (
    ANY_ROUTE,
    JoinLimits,
    QualityIndex,
    QualitySpec,
    deployment_document,
    variant_samples,
)
from tests.feedback.records import T0, T0_EPOCH, at, feedback, prediction

HOUR = 3600


def index(**limits) -> QualityIndex:
    idx = QualityIndex({}, JoinLimits(**limits))
    idx.models.add("wine")
    return idx


def figures(idx: QualityIndex, dep: str = "wine-v1", window: int = 60, route=ANY_ROUTE,
            span: int = 2 * HOUR) -> dict:
    return deployment_document(idx, dep, T0_EPOCH, T0_EPOCH + span, window, route)


def bucket(doc: dict, minute: int) -> dict:
    return doc["series"][minute]


def test_a_late_label_lands_in_the_minute_of_its_prediction():
    idx = index()
    idx.add_prediction(prediction("a", 5.5, seconds=10))
    idx.add_prediction(prediction("b", 6.0, seconds=70))
    idx.add_feedback(feedback("a", {"truthful": 6}, seconds=3000), now=T0_EPOCH + 3000)
    doc = figures(idx)
    first, second = bucket(doc, 0), bucket(doc, 1)
    assert (first["count"], first["mae"], first["bias"], first["labelled"]) == (1, 0.5, -0.5, 1)
    assert first["median_label_delay_seconds"] == 2990
    assert (second["count"], second["labelled"], second["unlabelled"]) == (0, 0, 1)
    assert doc["totals"]["predictions"] == 2 and doc["totals"]["requests"] == 2
    assert bucket(doc, 50)["count"] == 0  # not the minute the label arrived in
    assert idx.stats.joined["wine-v1"] == 1


def test_feedback_before_its_prediction_waits_and_joins():
    idx = index(feedback_wait=60)
    idx.add_feedback(feedback("a", {"truthful": 7}, seconds=0), now=T0_EPOCH)
    assert len(idx.waiting) == 1
    idx.sweep(T0_EPOCH + 30)
    idx.add_prediction(prediction("a", 6.0, seconds=20))
    assert not idx.waiting and bucket(figures(idx), 0)["mae"] == 1.0
    assert bucket(figures(idx), 0)["median_label_delay_seconds"] == 0  # never negative


def test_waiting_feedback_expires_as_unmatched_bounded_in_age_and_count():
    idx = index(feedback_wait=60, grace=10, max_waiting=2)
    idx.add_feedback(feedback("old", {"truthful": 1}, seconds=0), now=T0_EPOCH)
    idx.sweep(T0_EPOCH + 69)
    assert idx.stats.unmatched == 0
    idx.sweep(T0_EPOCH + 71)
    assert idx.stats.unmatched == 1 and not idx.waiting
    for i in range(5):
        idx.add_feedback(feedback(f"n{i}", {"truthful": 1}, seconds=100 + i), now=T0_EPOCH + 100)
    assert len(idx.waiting) == 2 and idx.stats.unmatched == 4
    assert set(idx.waiting) == {"wine\0n3", "wine\0n4"}  # the oldest went first


def test_a_prediction_long_after_its_feedback_does_not_join():
    idx = index(feedback_wait=60)
    idx.add_feedback(feedback("a", {"truthful": 7}, seconds=0), now=T0_EPOCH)
    idx.add_prediction(prediction("a", 6.0, seconds=500))
    assert bucket(figures(idx), 8)["labelled"] == 0


@pytest.mark.parametrize("order", ["in order", "reversed"])
def test_a_correction_replaces_the_label_and_never_counts_twice(order):
    idx = index()
    first = feedback("a", {"truthful": 9}, seconds=100)
    second = feedback("a", {"truthful": 6}, seconds=100)  # same second: time_us orders them
    second["time_us"] += 1
    idx.add_prediction(prediction("a", 5.0, seconds=10))
    for fb in ([first, second] if order == "in order" else [second, first]):
        idx.add_feedback(fb, now=T0_EPOCH + 100)
    doc = bucket(figures(idx), 0)
    assert (doc["count"], doc["labelled"], doc["mae"]) == (1, 1, 1.0)
    assert idx.stats.joined["wine-v1"] == 1
    assert idx.stats.corrections["wine-v1"] == (1 if order == "in order" else 0)


def test_the_same_feedback_twice_counts_once():
    idx = index()
    idx.add_prediction(prediction("a", 5.0))
    fb = feedback("a", {"truthful": 6}, seconds=5)
    idx.add_feedback(fb, now=T0_EPOCH)
    idx.add_feedback(dict(fb), now=T0_EPOCH)
    assert bucket(figures(idx), 0)["count"] == 1 and idx.stats.corrections["wine-v1"] == 0


@pytest.mark.parametrize(("payload", "reason"), [
    ({"truthful": "six"}, "ambiguous"),
    ({"truthful": 6, "other": 7}, "ambiguous"),
    ("six", "ambiguous"),
])
def test_an_unreadable_inferred_label_is_counted_invalid_with_its_reason(payload, reason):
    idx = index()
    idx.add_prediction(prediction("a", 5.0))
    idx.add_feedback(feedback("a", payload), now=T0_EPOCH)
    doc = bucket(figures(idx), 0)
    assert doc["invalid"] == {reason: 1} and doc["labelled"] == 0 and doc["unlabelled"] == 0
    assert idx.stats.invalid[("wine-v1", reason)] == 1


@pytest.mark.parametrize(("spec", "payload", "reason"), [
    (QualitySpec(label="$.truthful"), {"truthful": "six"}, "not_a_number"),
    (QualitySpec(label="$.truthful"), {"score": 6}, "missing"),
    (QualitySpec(label="$.truthful"), {"truthful": [6, 7]}, "row_count"),
    (QualitySpec(task="classification", classes=("a", "b")), {"y": "c"}, "unknown_class"),
    (QualitySpec(task="classification", label="$.y"), {"y": {"x": 1}}, "not_a_class"),
])
def test_a_configured_label_that_cannot_be_read_is_invalid(spec, payload, reason):
    idx = QualityIndex({"wine-v1": spec})
    idx.models.add("wine")
    value = "a" if spec.task == "classification" else 5.0
    idx.add_prediction(prediction("a", value))
    idx.add_feedback(feedback("a", payload), now=T0_EPOCH)
    assert bucket(figures(idx), 0)["invalid"] == {reason: 1}


def test_a_correction_from_invalid_to_valid_moves_the_prediction():
    idx = index()
    idx.add_prediction(prediction("a", 5.0))
    idx.add_feedback(feedback("a", {"truthful": "x"}, seconds=1), now=T0_EPOCH)
    idx.add_feedback(feedback("a", {"truthful": 4}, seconds=2), now=T0_EPOCH)
    doc = bucket(figures(idx), 0)
    assert doc["invalid"] == {} and doc["labelled"] == 1 and doc["mae"] == 1.0


def test_classification_figures_per_class():
    spec = QualitySpec(task="classification", prediction="$.prediction", label="$.label",
                       configured=True, defaults=("window",))
    idx = QualityIndex({"cls": spec})
    idx.models.add("iris")
    rows = [("a", "a"), ("a", "b"), ("b", "b"), ("b", "b"), ("c", "a")]
    for i, (pred, label) in enumerate(rows):
        idx.add_prediction(prediction(f"r{i}", pred, dep="cls", model="iris"))
        idx.add_feedback(feedback(f"r{i}", {"label": label}, model="iris"), now=T0_EPOCH)
    doc = figures(idx, "cls")
    totals = doc["totals"]
    assert totals["count"] == 5 and totals["accuracy"] == 0.6
    assert totals["classes"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert totals["classes"]["b"] == {"precision": 1.0, "recall": 0.666667, "f1": 0.8,
                                      "support": 3}
    assert totals["classes"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert doc["quality"]["state"] == "configured" and doc["quality"]["defaults"] == ["window"]


def test_a_multi_row_prediction_takes_one_label_per_row():
    idx = index()
    idx.add_prediction(prediction("a", [5.0, 6.0, 7.0]))
    idx.add_feedback(feedback("a", {"truthful": [5, 5, 5]}), now=T0_EPOCH)
    doc = bucket(figures(idx), 0)
    assert (doc["count"], doc["labelled"], doc["mae"], doc["bias"]) == (3, 1, 1.0, 1.0)


def test_without_a_spec_the_quality_is_inferred_or_not_configured():
    idx = index()
    assert figures(idx)["quality"]["state"] == "not configured"
    idx.add_prediction(prediction("s", {"prediction": ["cat"]}))
    doc = figures(idx)
    assert doc["quality"]["state"] == "not configured"
    assert "not numbers" in doc["quality"]["reason"] and "mae" not in doc["totals"]
    idx.add_prediction(prediction("a", 5.0))
    idx.add_feedback(feedback("a", {"truthful": 6}), now=T0_EPOCH)
    quality = figures(idx)["quality"]
    assert quality["state"] == "inferred"
    assert (quality["task"], quality["prediction"], quality["label"], quality["window"]) == (
        "regression", "$.prediction", "$.truthful", "1h")
    assert quality["defaults"] == ["task", "prediction", "label", "window"]


def test_a_v2_answer_with_one_output_is_inferred():
    idx = index()
    body = {"model_name": "wine", "outputs": [{"name": "quality", "data": [5.5, 6.5]}]}
    idx.add_prediction(prediction("a", body))
    idx.add_feedback(feedback("a", {"truthful": [6, 6]}), now=T0_EPOCH)
    doc = figures(idx)
    assert doc["quality"]["prediction"] == "$.outputs[0].data" and doc["totals"]["mae"] == 0.5


def test_pending_predictions_are_bounded_and_evictions_counted():
    idx = index(max_pending=3)
    for i in range(5):
        idx.add_prediction(prediction(f"r{i}", 5.0, seconds=i))
    assert len(idx.slots) == 3 and idx.stats.evicted == 2
    idx.add_feedback(feedback("r0", {"truthful": 6}), now=T0_EPOCH)  # evicted: it waits
    assert len(idx.waiting) == 1
    idx.add_feedback(feedback("r4", {"truthful": 6}), now=T0_EPOCH)
    assert bucket(figures(idx), 0)["labelled"] == 1


def test_the_horizon_drops_old_figures_and_predictions():
    idx = index(horizon=HOUR)
    idx.add_prediction(prediction("a", 5.0, seconds=0))
    idx.sweep(T0_EPOCH + 2 * HOUR)
    assert not idx.slots and not idx.cells


def test_errors_latency_samples_and_routes_for_the_canary():
    idx = index(latency_samples=3)
    for i in range(10):
        idx.add_prediction(prediction(f"c{i}", 5.0, seconds=i, route="canary", upstream_ms=i))
    idx.add_prediction(prediction("e1", {"message": "boom"}, status=502, route="canary",
                                  upstream_ms=None))
    idx.add_prediction(prediction("d1", 5.0, seconds=1))  # through the default route
    idx.add_prediction(prediction("m1", 5.0, seconds=1, dep="wine-v2", route="canary",
                                  mirror=True))
    for i in range(4):
        idx.add_feedback(feedback(f"c{i}", {"truthful": 5 + i}), now=T0_EPOCH)
    canary = variant_samples(idx, "wine-v1", T0, T0 + timedelta(minutes=1), route_id="canary")
    assert (canary.requests, canary.errors, canary.task) == (11, 1, "regression")
    assert sorted(canary.quality) == [0.0, 1.0, 2.0, 3.0]
    assert len(canary.latencies) == 3 and all(0 <= s < 0.01 for s in canary.latencies)
    everything = variant_samples(idx, "wine-v1", T0, T0 + timedelta(minutes=1))
    assert everything.requests == 12
    assert variant_samples(idx, "wine-v2", T0, T0 + timedelta(minutes=1),
                           route_id="canary").requests == 0  # a mirror is not a target
    assert idx.routes_of("wine-v2") == ["mirror:canary"]


def test_the_mirror_is_labelled_with_the_same_feedback():
    idx = index()
    idx.add_prediction(prediction("a", 5.0, dep="wine-v1"))
    idx.add_prediction(prediction("a", 6.5, dep="wine-v2", version="2.0", mirror=True,
                                  route="shadow"))
    idx.add_feedback(feedback("a", {"truthful": 6}), now=T0_EPOCH)
    assert figures(idx, "wine-v1")["totals"]["mae"] == 1.0
    assert figures(idx, "wine-v2")["totals"]["mae"] == 0.5


def test_the_figures_do_not_depend_on_the_order_records_come_in():
    rng = random.Random(7)
    records = []
    for i in range(60):
        seconds = rng.randrange(0, 3 * HOUR)
        records.append(("p", prediction(f"r{i}", round(rng.uniform(3, 8), 3), seconds=seconds,
                                        dep=rng.choice(["wine-v1", "wine-v2"]),
                                        upstream_ms=rng.uniform(1, 9))))
        for k in range(rng.randrange(0, 3)):
            fb = feedback(f"r{i}", {"truthful": rng.randrange(3, 9)},
                          seconds=seconds + rng.randrange(-30, 900))
            fb["time_us"] += k
            records.append(("f", fb))
    docs = []
    for attempt in range(4):
        shuffled = list(records)
        if attempt:
            random.Random(attempt).shuffle(shuffled)
        idx = index(feedback_wait=600)
        for kind, record in shuffled:
            if kind == "p":
                idx.add_prediction(record)
            else:
                idx.add_feedback(record, now=T0_EPOCH)
        docs.append([figures(idx, dep, window=600, span=4 * HOUR)
                     for dep in ("wine-v1", "wine-v2")])
    for other in docs[1:]:
        assert other == docs[0]


def test_many_replaced_waiting_feedbacks_do_not_grow_memory():
    idx = index()
    for n in itertools.count():
        if n == 10_000:
            break
        fb = feedback("same", {"truthful": 1}, seconds=n / 1000)
        fb["time_us"] += n
        idx.add_feedback(fb, now=T0_EPOCH)
    assert len(idx.waiting) == 1 and len(idx._deadlines) < 2_100


def test_a_window_that_is_not_whole_minutes_is_refused():
    with pytest.raises(ValueError, match="whole number of minutes"):
        QualitySpec(window=90)
    assert at(60) > T0


def test_samples_take_values_back_without_scanning_and_stay_a_multiset():
    from feedback.index import Samples

    samples = Samples()
    for v in (1.0, 2.0, 2.0, 3.0, 4.0, 5.0):
        samples.add(v)
    samples.discard(2.0)
    assert sorted(samples.values()) == [1.0, 2.0, 3.0, 4.0, 5.0] and len(samples) == 5
    samples.add(2.0)  # put back
    assert sorted(samples.values()) == [1.0, 2.0, 2.0, 3.0, 4.0, 5.0]
    for v in (1.0, 2.0, 3.0, 4.0):  # more than half taken: compacted
        samples.discard(v)
    assert sorted(samples.values()) == [2.0, 5.0] and len(samples) == 2


def test_corrections_in_a_busy_minute_keep_exact_figures():
    idx = index()
    for i in range(2_000):
        idx.add_prediction(prediction(f"b{i}", 5.0, seconds=i % 60))
        idx.add_feedback(feedback(f"b{i}", {"truthful": 6}), now=T0_EPOCH)
    for n in range(1_500):  # corrections past the compaction point
        fb = feedback(f"b{n}", {"truthful": 7})
        fb["time_us"] += 1 + n
        idx.add_feedback(fb, now=T0_EPOCH)
    doc = bucket(figures(idx), 0)
    assert doc["count"] == 2_000 and doc["mae"] == 1.75 and doc["bias"] == -1.75
