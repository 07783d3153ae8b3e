"""reconcile(): one stored deployment and what the runtime observes -> actions (pure)."""

from deploy.control.autoscaler import ScalingPolicy
from deploy.control.deployments import ModelDeploymentStatus, parse_deployment
from deploy.control.reconciler import (
    Apply,
    Delete,
    MarkVerified,
    Publish,
    Remove,
    Unpublish,
    WriteStatus,
    desired_status,
    reconcile,
)
from deploy.control.runtime import Observed

POLICY = ScalingPolicy(cold_start_timeout=7)


def dep(min_replicas=1, state="Processing", generation=3, **status):
    d = parse_deployment({"id": "wine", "spec": {"image": "file:///m", "predictor":
                                                 "odahu-ml-server", "minReplicas": min_replicas,
                                                 "maxReplicas": 4}})
    d.generation = generation
    d.status = ModelDeploymentStatus(state=state, **status)
    return d


def of(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


def test_processing_while_replicas_start():
    actions = reconcile(dep(), Observed(3, replicas=1), 1, False, POLICY, "now")
    assert [(a.deployment.id, a.replicas) for a in of(actions, Apply)] == [("wine", 1)]
    assert of(actions, WriteStatus)[0].status.replicas == 1
    assert of(actions, Publish)[0].endpoints == ()
    assert of(actions, Publish)[0].cold_start_timeout == 7


def test_ready_when_enough_replicas_are_available():
    observed = Observed(3, replicas=1, available=1, endpoints=(("127.0.0.1", 9),),
                        model_name="wine", model_version="1.0")
    actions = reconcile(dep(), observed, 1, False, POLICY, "now")
    status = of(actions, WriteStatus)[0].status
    assert (status.state, status.available_replicas, status.model_name) == ("Ready", 1, "wine")
    assert status.last_updated_time == "now"
    assert of(actions, MarkVerified) == [MarkVerified("wine", 3)]
    publish = of(actions, Publish)[0]
    assert (publish.endpoints, publish.model_name, publish.unavailable) == (
        (("127.0.0.1", 9),), "wine", "")


def test_idempotent_when_status_already_stored():
    observed = Observed(3, replicas=1, available=1, model_name="wine", model_version="1.0")
    stored = dep(state="Ready", replicas=1, available_replicas=1, model_name="wine",
                 model_version="1.0", last_updated_time="earlier")
    actions = reconcile(stored, observed, 1, True, POLICY, "now")
    assert of(actions, WriteStatus) == [] and of(actions, MarkVerified) == []


def test_scaled_to_zero_is_ready_once_verified():
    observed = Observed(3, model_name="wine", model_version="1.0")
    assert of(reconcile(dep(min_replicas=0), observed, 0, True, POLICY, "t"),
              WriteStatus)[0].status.state == "Ready"
    not_yet = reconcile(dep(min_replicas=0), observed, 1, False, POLICY, "t")
    assert of(not_yet, WriteStatus)[0].status.state == "Processing"


def test_runtime_gave_up_means_failed_with_reason():
    observed = Observed(3, failure="model cannot be loaded: boom")
    actions = reconcile(dep(), observed, 1, False, POLICY, "t")
    status = of(actions, WriteStatus)[0].status
    assert (status.state, status.reason) == ("Failed", "model cannot be loaded: boom")
    assert of(actions, Publish)[0].unavailable == "model cannot be loaded: boom"


def test_status_of_an_older_generation_is_processing():
    actions = reconcile(dep(state="Ready"), Observed(2, available=1), 1, True, POLICY, "t")
    assert of(actions, WriteStatus)[0].status.state == "Processing"


def test_temporary_problem_is_shown_as_reason():
    observed = Observed(3, problem="replica wine-0: exit code -9")
    status = of(reconcile(dep(), observed, 1, False, POLICY, "t"), WriteStatus)[0].status
    assert (status.state, status.reason) == ("Processing", "replica wine-0: exit code -9")


def test_deleting_stops_then_removes():
    deleting = dep(state="Deleting")
    assert reconcile(deleting, Observed(3, replicas=1), 0, True, POLICY, "t") == [
        Unpublish("wine"), Delete("wine")]
    assert reconcile(deleting, None, 0, True, POLICY, "t") == [Unpublish("wine"), Remove("wine")]


def test_publish_says_whether_the_deployment_is_ready_for_route_traffic():
    starting = reconcile(dep(), Observed(3, replicas=1), 1, False, POLICY, "now")
    assert of(starting, Publish)[0].ready is False
    observed = Observed(3, replicas=1, available=1, endpoints=(("127.0.0.1", 9),))
    assert of(reconcile(dep(), observed, 1, False, POLICY, "now"), Publish)[0].ready is True


def test_documents_of_the_replicas_are_published():
    info = (("/api/model/info", b'{"openapi": "3.0.3"}'),)
    observed = Observed(3, replicas=1, available=1, endpoints=(("127.0.0.1", 9),),
                        model_name="wine", model_version="1", documents=info)
    assert of(reconcile(dep(), observed, 1, False, POLICY, "now"), Publish)[0].documents == info
    assert of(reconcile(dep(), None, 1, False, POLICY, "now"), Publish)[0].documents == ()


def test_a_platform_verified_generation_is_ready_at_zero():
    """Kubernetes reports the spec rolled out while KEDA keeps it at zero replicas."""
    observed = Observed(3, replicas=0, available=0, verified=True)
    status = of(reconcile(dep(min_replicas=0), observed, 0, False, POLICY, "now"),
                WriteStatus)[0].status
    assert status.state == "Ready"
    unverified = Observed(3, replicas=0, available=0)
    assert desired_status(dep(min_replicas=0), unverified, False).state == "Processing"


def test_a_problem_before_the_spec_is_applied_is_the_reason():
    observed = Observed(2, problem="listing Deployment: ConnectError")
    status = of(reconcile(dep(), observed, 1, False, POLICY, "now"), WriteStatus)[0].status
    assert (status.state, status.reason) == ("Processing", "listing Deployment: ConnectError")
