"""Deriving a ModelDeployment's state from a Deployment, its pods and their events (pure)."""

from __future__ import annotations

from deploy.k8s.status import derive_status


def deployment(generation=1, observed=1, replicas=1, updated=1, available=1, conditions=(),
               spec_replicas=1, deleting=False):
    meta = {"name": "wine", "generation": generation}
    if deleting:
        meta["deletionTimestamp"] = "2026-11-25T10:00:00Z"
    return {"metadata": meta, "spec": {"replicas": spec_replicas},
            "status": {"observedGeneration": observed, "replicas": replicas,
                       "updatedReplicas": updated, "availableReplicas": available,
                       "conditions": list(conditions)}}


AVAILABLE = {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}
UNAVAILABLE = {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}
PROGRESSING = {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
               "message": 'ReplicaSet "wine-1" is progressing.'}


def pod(name, waiting_reason=None, message=""):
    state = {"waiting": {"reason": waiting_reason, "message": message}} if waiting_reason \
        else {"running": {}}
    return {"metadata": {"name": name},
            "status": {"containerStatuses": [{"name": "predictor", "state": state}]}}


def test_no_deployment_yet_is_processing():
    assert derive_status(None).state == "Processing"


def test_rolled_out_and_available_is_ready():
    s = derive_status(deployment(replicas=2, updated=2, available=2, spec_replicas=2,
                                 conditions=[AVAILABLE, PROGRESSING]))
    assert (s.state, s.replicas, s.available_replicas, s.reason) == ("Ready", 2, 2, "")


def test_scaled_to_zero_is_ready():
    s = derive_status(deployment(replicas=0, updated=0, available=0, spec_replicas=0,
                                 conditions=[AVAILABLE]))
    assert (s.state, s.replicas) == ("Ready", 0)


def test_new_generation_not_yet_observed_is_processing():
    s = derive_status(deployment(generation=2, observed=1, conditions=[AVAILABLE, PROGRESSING]))
    assert s.state == "Processing" and "progressing" in s.reason


def test_rollout_in_progress_old_pods_still_serving_is_processing():
    s = derive_status(deployment(generation=2, observed=2, replicas=2, updated=1, available=1,
                                 conditions=[AVAILABLE, PROGRESSING]))
    assert (s.state, s.available_replicas) == ("Processing", 1)


def test_image_pull_failure_is_failed_with_its_reason():
    s = derive_status(deployment(available=0, conditions=[UNAVAILABLE, PROGRESSING]),
                      [pod("wine-b", "ImagePullBackOff", 'Back-off pulling image "reg/x:1"'),
                       pod("wine-a")])
    assert s.state == "Failed"
    assert s.reason == ('pod wine-b, container predictor: ImagePullBackOff: '
                        'Back-off pulling image "reg/x:1"')


def test_crash_loop_is_failed():
    s = derive_status(deployment(available=0, conditions=[UNAVAILABLE]),
                      [pod("wine-a", "CrashLoopBackOff")])
    assert (s.state, s.reason) == ("Failed", "pod wine-a, container predictor: CrashLoopBackOff")


def test_container_creating_is_not_a_failure():
    s = derive_status(deployment(available=0, conditions=[UNAVAILABLE, PROGRESSING]),
                      [pod("wine-a", "ContainerCreating")])
    assert s.state == "Processing"


def test_progress_deadline_and_replica_failure_are_failed():
    deadline = derive_status(deployment(available=0, conditions=[UNAVAILABLE, {
        "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
        "message": 'ReplicaSet "wine-1" has timed out progressing.'}]))
    assert deadline.state == "Failed"
    assert deadline.reason.startswith("ProgressDeadlineExceeded: ReplicaSet")
    quota = derive_status(deployment(available=0, conditions=[{
        "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
        "message": "exceeded quota: compute"}]))
    assert (quota.state, quota.reason) == ("Failed", "FailedCreate: exceeded quota: compute")


def test_latest_warning_event_explains_processing():
    events = [
        {"type": "Warning", "reason": "FailedScheduling", "lastTimestamp": "2026-11-25T10:00:00Z",
         "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."},
        {"type": "Normal", "reason": "Scheduled", "lastTimestamp": "2026-11-25T10:05:00Z",
         "message": "ok"},
    ]
    s = derive_status(deployment(available=0, conditions=[UNAVAILABLE, PROGRESSING]),
                      [pod("wine-a", "ContainerCreating")], events)
    assert s.reason == "FailedScheduling: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu."


def test_deleting():
    assert derive_status(deployment(deleting=True, conditions=[AVAILABLE])).state == "Deleting"


def test_current_available_counts_only_pods_of_the_applied_template():
    from deploy.k8s.status import current_available, observed_generation

    assert current_available(None, 1) == 0
    # the controller has not seen generation 3 (mlgate's apply) yet
    assert current_available(deployment(generation=3, observed=2, available=2), 3) == 0
    # mid-rollout: 3 pods, 1 of the new template; old ones are counted as available first
    rolling = deployment(generation=3, observed=3, replicas=3, updated=1, available=2)
    assert current_available(rolling, 3) == 0
    assert current_available(deployment(generation=3, observed=3, replicas=3, updated=1,
                                        available=3), 3) == 1
    # an HPA scale after the apply: a later generation, same template, exact count
    scaled = deployment(generation=5, observed=5, replicas=3, updated=3, available=2)
    assert current_available(scaled, 3) == 2
    assert observed_generation(scaled) == 5 and observed_generation(None) == 0
