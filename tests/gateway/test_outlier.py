"""Outlier ejection: the pure state machine, and how replica and target choice use it."""

import pytest

from gateway.outlier import (
    HEALTHY,
    OutlierPolicy,
    after_failure,
    after_success,
    ejected,
    is_failure_status,
    record,
)
from gateway.routing import Deployment, Replica, pick_replica

POLICY = OutlierPolicy(consecutive_failures=3, base_ejection=10, max_ejection=25)


def fail(state, times, now=100.0):
    for _ in range(times):
        state = after_failure(state, now, POLICY)
    return state


def test_ejected_after_consecutive_failures_only():
    assert not ejected(fail(HEALTHY, 2), 100)
    state = fail(HEALTHY, 3)
    assert ejected(state, 100) and ejected(state, 109.9) and not ejected(state, 110)
    assert state.probation and state.ejections == 1


def test_a_success_resets_the_count():
    state = after_success(fail(HEALTHY, 2))
    assert state == HEALTHY
    assert not ejected(fail(state, 2), 100)


def test_failed_probe_ejects_again_for_longer_up_to_the_cap():
    state = fail(HEALTHY, 3, now=100)
    state = after_failure(state, 110, POLICY)  # the probe after 10 s fails
    assert state.ejections == 2 and state.ejected_until == 130
    state = after_failure(state, 130, POLICY)
    assert state.ejected_until == 155  # 40 s capped at 25


def test_probe_success_ends_probation_and_a_second_forgets_the_ejections():
    state = after_success(fail(HEALTHY, 3))
    assert not state.probation and state.ejections == 1
    assert not ejected(fail(state, 2, now=200), 200)  # needs the full count again
    assert after_success(state) == HEALTHY


@pytest.mark.parametrize(("status", "failure"), [(200, False), (400, False), (500, False),
                                                 (502, True), (503, True), (504, True)])
def test_only_gateway_failures_count(status, failure):
    assert is_failure_status(status) is failure


def test_policy_checks_itself():
    with pytest.raises(ValueError):
        OutlierPolicy(consecutive_failures=0)
    with pytest.raises(ValueError):
        OutlierPolicy(base_ejection=30, max_ejection=10)


def test_record_updates_the_replica():
    replica = Replica("127.0.0.1", 9)
    for _ in range(3):
        record(replica, False, 100.0, POLICY)
    assert ejected(replica.outlier, 105)
    record(replica, True, 111.0, POLICY)
    assert not replica.outlier.probation


def test_pick_replica_skips_ejected_replicas_unless_all_are():
    good, bad = Replica("127.0.0.1", 1), Replica("127.0.0.1", 2)
    bad.outlier = fail(HEALTHY, 3, now=100)
    assert {pick_replica([good, bad], now=101) for _ in range(10)} == {good}
    good.outlier = bad.outlier
    assert pick_replica([good, bad], now=101) in (good, bad)  # panic: all are ejected
    assert pick_replica([good, bad], now=200) in (good, bad)


def test_deployment_usable_for_new_route_traffic():
    dep = Deployment("wine", "wine", "1.0", replicas=[Replica("127.0.0.1", 1)])
    assert dep.usable(101)
    dep.replicas[0].outlier = fail(HEALTHY, 3, now=100)
    assert not dep.usable(101) and dep.usable(111)
    dep.ready = False
    assert not dep.usable(111)
    cold = Deployment("cold", "cold", "1.0", cold_start_timeout=30)
    assert cold.usable(0)  # scaled to zero but Ready: a request may wait for a replica
    assert not Deployment("none", "none", "1.0").usable(0)
    cold.unavailable_reason = "model cannot be loaded"
    assert not cold.usable(0)
