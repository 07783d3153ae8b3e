"""The same figures whatever the topology: gateway workers with their own spools, and a
cluster-like split where one ``mlgate up`` serves predictions and another takes feedback,
both writing to one S3 bucket (moto). Also the memory bound on pending predictions."""

from __future__ import annotations

import pytest

from tests.conftest import EXAMPLES, wait_until
from tests.e2e.test_quality import (
    invoke,
    metric,
    send_feedback,
    settle,
    totals,
    write_config,
)

pytestmark = pytest.mark.e2e
FAST = """\
storage:
  flush_interval: 0.2
quality:
  poll_interval: 0.5
  rescan_interval: 2
  feedback_wait: 4
"""


def test_pending_predictions_are_bounded_and_evictions_counted(mlgate, demo_models,
                                                                tmp_path_factory):
    config = write_config(tmp_path_factory, FAST + "  max_pending: 3\n")
    stack = mlgate(["-f", str(EXAMPLES / "wine-v1.yaml"), "--config", config])
    stack.wait_state("wine-v1", "Ready")
    with stack.client() as client:
        for i in range(8):
            invoke(client, "wine-v1", f"evict-{i}")
        wait_until(lambda: metric(stack, "mlgate_predictions_evicted_total") == 5, 20,
                   what="five evictions")
        assert metric(stack, "mlgate_predictions_pending") == 3
        send_feedback(client, "evict-7", {"truthful": 6})  # still pending: joins
        send_feedback(client, "evict-0", {"truthful": 6})  # evicted: waits, then unmatched
        settle(client, "wine-v1", lambda t: t["labelled"] == 1, "the kept one to join")
        wait_until(lambda: metric(stack, "mlgate_feedback_unmatched_total") == 1, 30,
                   what="the evicted one to expire unmatched")
        assert totals(client, "wine-v1")["requests"] == 8  # evicted, still counted


def test_gateway_workers_count_each_request_once(mlgate, demo_models, tmp_path_factory):
    """With --workers 2 most requests and feedback land in the worker, whose records reach
    the primary's join through the bucket only."""
    config = write_config(tmp_path_factory, FAST)
    stack = mlgate(["-f", str(EXAMPLES / "wine-v1.yaml"), "--config", config,
                    "--workers", "2"])
    stack.wait_state("wine-v1", "Ready")
    sent = 30
    with stack.client() as client:
        for i in range(sent):
            with stack.client() as fresh:  # a new connection each: both processes serve
                invoke(fresh, "wine-v1", f"w-{i}")
                send_feedback(fresh, f"w-{i}", {"truthful": 5})
        after = settle(client, "wine-v1", lambda t: t["labelled"] == sent,
                       "every label through the bucket", timeout=60)
    assert (after["requests"], after["predictions"], after["count"]) == (sent, sent, sent)
    assert metric(stack, "mlgate_feedback_joined_total", deployment="wine-v1") == sent
    assert metric(stack, "mlgate_feedback_unmatched_total") == 0


def test_feedback_taken_by_another_mlgate_joins_through_the_bucket(mlgate, demo_models,
                                                                   s3_server,
                                                                   tmp_path_factory):
    """The cluster's shape: the edge serves predictions, feedback pods (another ``mlgate
    up`` with no deployments) take the feedback; the edge's figures count it, once."""
    bucket = s3_server.new_bucket()
    env = s3_server.env(bucket, prefix="split")
    config = write_config(tmp_path_factory, FAST)
    edge = mlgate(["-f", str(EXAMPLES / "wine-v1.yaml"), "--config", config], env=env)
    feedback_pod = mlgate(["--config", config], env=env)
    edge.wait_state("wine-v1", "Ready")
    with edge.client() as client, feedback_pod.client() as fb_client:
        predictions = {f"s-{i}": invoke(client, "wine-v1", f"s-{i}") for i in range(5)}
        send_feedback(fb_client, "s-early", {"truthful": 4})  # before its prediction
        for i, rid in enumerate(predictions):
            send_feedback(fb_client, rid, {"truthful": 5 + i % 2})
        send_feedback(fb_client, "s-0", {"truthful": 7})  # a correction, via the bucket too
        predictions["s-early"] = invoke(client, "wine-v1", "s-early")
        expected = sum(abs(p - y) for p, y in zip(
            predictions.values(), [7, 6, 5, 6, 5, 4], strict=True)) / 6
        after = settle(client, "wine-v1", lambda t: t["labelled"] == 6 and abs(
            t["mae"] - expected) < 1e-4, "the feedback pod's labels", timeout=60)
    assert after["requests"] == 6 and after["count"] == 6
    assert metric(edge, "mlgate_feedback_joined_total", deployment="wine-v1") == 6
    # the feedback pod has no deployments: it counts nothing as unmatched
    assert metric(feedback_pod, "mlgate_feedback_unmatched_total") == 0
    assert metric(feedback_pod, "mlgate_feedback_joined_total") == 0
