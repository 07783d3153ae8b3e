"""The replica planner: desired vs observed slots -> start/stop/forget, idempotent."""

import math

from deploy.control.runtime import backoff
from deploy.local.plan import (
    EXITED,
    READY,
    STARTING,
    STOPPING,
    Forget,
    ReplicaView,
    Start,
    Stop,
    Target,
    next_retry,
    plan,
)


def r(index, phase=READY, generation=1, retry_at=0.0):
    return ReplicaView(index, generation, phase, retry_at)


def apply(replicas, actions):
    """What the shell would observe right after starting the actions."""
    by_index = {x.index: x for x in replicas}
    for a in actions:
        if isinstance(a, Start):
            by_index[a.index] = r(a.index, STARTING, generation=1)
        elif isinstance(a, Stop):
            by_index[a.index] = r(a.index, STOPPING, by_index[a.index].generation)
        else:
            del by_index[a.index]
    return list(by_index.values())


def test_starts_missing_replicas_in_free_slots():
    assert plan(Target(1, 3), [r(1)], 0) == [Start(0), Start(2)]


def test_idempotent_once_applied():
    replicas = [r(0)]
    actions = plan(Target(1, 3), replicas, 0)
    assert plan(Target(1, 3), apply(replicas, actions), 0) == []


def test_scale_down_stops_starting_before_ready_newest_first():
    replicas = [r(0), r(1), r(2, STARTING), r(3)]
    assert plan(Target(1, 2), replicas, 0) == [Stop(2), Stop(3)]


def test_scale_to_zero_stops_everything():
    assert plan(Target(1, 0), [r(0), r(1)], 0) == [Stop(1), Stop(0)]


def test_crashed_replica_restarts_after_backoff_only():
    replicas = [r(0), r(1, EXITED, retry_at=10.0)]
    assert plan(Target(1, 2), replicas, 5.0) == []
    assert plan(Target(1, 2), replicas, 10.0) == [Start(1)]
    assert next_retry(replicas, 5.0) == 10.0


def test_exited_replica_not_needed_any_more_is_forgotten():
    assert plan(Target(1, 1), [r(0), r(1, EXITED, retry_at=10.0)], 0) == [Forget(1)]


def test_update_keeps_old_generation_until_new_is_ready():
    old = [r(0, generation=1)]
    actions = plan(Target(2, 1), old, 0)
    assert actions == [Start(1)]
    starting = [r(0, generation=1), r(1, STARTING, generation=2)]
    assert plan(Target(2, 1), starting, 0) == []
    ready = [r(0, generation=1), r(1, READY, generation=2)]
    assert plan(Target(2, 1), ready, 0) == [Stop(0)]


def test_old_generation_still_starting_is_stopped_at_once():
    assert plan(Target(2, 1), [r(0, STARTING, generation=1)], 0) == [Start(1), Stop(0)]


def test_given_up_or_deleted_stops_all_and_forgets_exited():
    replicas = [r(0), r(1, STARTING), r(2, EXITED, retry_at=math.inf), r(3, STOPPING)]
    expected = [Stop(0), Stop(1), Forget(2)]
    assert plan(Target(1, 2, failed=True), replicas, 0) == expected
    assert plan(None, replicas, 0) == expected


def test_backoff_doubles_and_is_capped():
    assert [backoff(n, 1.0, 10.0) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 10]
