"""The autoscaler's decisions, driven by explicit timestamps (no sleeping)."""

import pytest

from deploy.control.autoscaler import (
    Autoscaler,
    ScalerState,
    ScalingPolicy,
    annotation_errors,
    decide,
    demand,
    observe,
    policy_for,
)

POLICY = ScalingPolicy(min_replicas=0, max_replicas=5, target_concurrency=10, window=2,
                       scale_down_delay=10, scale_to_zero_after=30)


def run(state, policy, samples, verified=True):
    """Feed (time, in_flight, requests_total) samples; the decision after each."""
    out = []
    for t, in_flight, total in samples:
        observe(state, t, in_flight, total, policy)
        out.append(decide(state, policy, t, verified))
    return out


def test_new_deployment_starts_with_one_replica_even_with_min_zero():
    state = ScalerState.new(0.0)
    assert run(state, POLICY, [(0.5, 0, 0)]) == [1]


def test_scales_up_promptly_with_concurrency():
    state = ScalerState.new(0.0)
    decisions = run(state, POLICY, [(0.5, 0, 0), (1.0, 40, 40), (1.5, 40, 80)])
    assert decisions[0] == 1
    assert decisions[1] >= 2  # the first loaded sample already raises it
    assert decisions[2] >= 3


def test_never_above_max_or_below_min():
    policy = ScalingPolicy(min_replicas=2, max_replicas=3, window=1, scale_down_delay=1,
                           scale_to_zero_after=1)
    state = ScalerState.new(0.0)
    assert run(state, policy, [(t, 500, 0) for t in (0.5, 1.0, 1.5)])[-1] == 3
    assert run(state, policy, [(t, 0, 0) for t in range(2, 60)])[-1] == 2


def test_scale_down_waits_for_the_stable_window():
    state = ScalerState.new(0.0)
    loaded = [(t / 2, 40, int(t * 20)) for t in range(1, 9)]  # 4 s at 40 in flight
    assert run(state, POLICY, loaded)[-1] == 4
    quiet = [(4 + t / 2, 5, 200 + t) for t in range(1, 40)]   # then 5 in flight
    decisions = run(state, POLICY, quiet)
    times = [t for t, _, _ in quiet]
    first_down = next(t for t, d in zip(times, decisions, strict=True) if d < 4)
    assert first_down > 4 + POLICY.scale_down_delay - POLICY.window
    assert decisions[-1] == 1


def test_scale_to_zero_only_after_idle_period_and_when_verified():
    state = ScalerState.new(0.0)
    observe(state, 1.0, 1, 1, POLICY)
    idle = [(t, 0, 1) for t in range(2, 40)]
    decisions = run(state, POLICY, idle)
    times = [t for t, _, _ in idle]
    zero_at = next(t for t, d in zip(times, decisions, strict=True) if d == 0)
    assert zero_at >= 1.0 + POLICY.scale_to_zero_after
    state2 = ScalerState.new(0.0)
    assert run(state2, POLICY, idle, verified=False)[-1] == 1


def test_requests_between_samples_count_as_activity():
    state = ScalerState.new(0.0)
    run(state, POLICY, [(1.0, 0, 0)])
    run(state, POLICY, [(29.0, 0, 3)])  # three short requests since the last sample
    assert run(state, POLICY, [(40.0, 0, 3)]) == [1]
    assert run(state, POLICY, [(59.5, 0, 3)]) == [0]


def test_demand_wakes_a_deployment_at_zero():
    state = ScalerState.new(0.0)
    assert run(state, POLICY, [(100.0, 0, 0)]) == [0]
    demand(state, 101.0)
    assert decide(state, POLICY, 101.0, True) == 1


def test_min_replicas_never_scale_to_zero():
    policy = ScalingPolicy(min_replicas=1, max_replicas=2, scale_to_zero_after=1)
    state = ScalerState.new(0.0)
    assert run(state, policy, [(t, 0, 0) for t in range(1, 20)])[-1] == 1


def test_annotations_override_defaults():
    policy = policy_for(ScalingPolicy(), 0, 4, {"mlgate.io/target-concurrency": "2",
                                                "mlgate.io/scale-to-zero-after": "5",
                                                "other/annotation": "x"})
    assert (policy.target_concurrency, policy.scale_to_zero_after) == (2.0, 5.0)
    assert (policy.min_replicas, policy.max_replicas) == (0, 4)


@pytest.mark.parametrize(("annotations", "fragment"), [
    ({"mlgate.io/target-concurrency": "many"}, "must be a number"),
    ({"mlgate.io/target-concurrency": "0"}, "positive"),
    ({"mlgate.io/window": "-1"}, "positive"),
    ({"mlgate.io/typo": "1"}, "unknown annotation"),
])
def test_bad_annotations_are_named(annotations, fragment):
    errors = annotation_errors(annotations)
    assert len(errors) == 1 and fragment in errors[0]


def test_autoscaler_resets_state_for_a_new_generation():
    scaler = Autoscaler(POLICY)
    first = scaler.state("wine", 1, 0.0)
    assert scaler.state("wine", 1, 5.0) is first
    second = scaler.state("wine", 2, 6.0)
    assert second is not first and second.started == 6.0
    scaler.demand("wine", 7.0)
    assert second.last_active == 7.0


def test_a_replica_back_from_zero_gets_a_full_idle_period():
    state = ScalerState.new(0.0)
    observe(state, 1.0, 0, 0, POLICY, available=1)
    assert run(state, POLICY, [(40.0, 0, 0)]) == [0]
    demand(state, 41.0)
    observe(state, 50.0, 0, 0, POLICY, available=0)   # still starting
    observe(state, 60.0, 0, 0, POLICY, available=1)   # ready 19 s after the demand
    assert decide(state, POLICY, 80.0, True) == 1
    assert decide(state, POLICY, 90.0, True) == 0


def test_requests_shed_at_the_admission_bound_ask_for_one_replica_more():
    """The bound caps what is in flight, so shedding is the demand the in-flight count
    cannot show: a sample with new refusals recommends one replica over those available."""
    from deploy.control.autoscaler import ScalerState, ScalingPolicy, decide, observe

    policy = ScalingPolicy(min_replicas=1, max_replicas=4, target_concurrency=10,
                           window=1, scale_down_delay=10)
    state = ScalerState.new(0.0)
    observe(state, 1.0, 1, 10, policy, available=1, shed_total=0)
    assert decide(state, policy, 1.0, True) == 1
    observe(state, 2.0, 1, 30, policy, available=1, shed_total=15)
    assert decide(state, policy, 2.0, True) == 2
    observe(state, 3.0, 2, 60, policy, available=2, shed_total=20)
    assert decide(state, policy, 3.0, True) == 3
    observe(state, 4.0, 2, 80, policy, available=3, shed_total=20)  # no new refusals
    assert decide(state, policy, 4.0, True) == 3  # kept for scale_down_delay
    observe(state, 20.0, 1, 90, policy, available=3, shed_total=20)
    assert decide(state, policy, 20.0, True) == 1
