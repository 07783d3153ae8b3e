"""The Kubernetes runtime against the stand-in API server: reconcile outcomes and status."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp import web

from deploy.config import KubernetesSettings
from deploy.k8s_client import KubeRejected
from deploy.k8s_runtime import KubernetesRuntime
from deploy.models import ModelDeployment, ModelDeploymentStatus, parse_deployment
from gateway import RouteTable, Timeouts, UpstreamPool
from gateway.proxy import send_to_deployment
from tests.k8s_standin import StandIn

KINDS = ("Deployment", "Service", "HorizontalPodAutoscaler", "ScaledObject",
         "PodDisruptionBudget", "Pod")


def dep(image="registry.example.com/wine:1.0", **spec) -> ModelDeployment:
    return parse_deployment({"id": "wine", "spec": {
        "image": image, "predictor": "odahu-ml-server", "minReplicas": 1, "maxReplicas": 3,
        **spec}})


async def wait_for(predicate: Callable[[], object], what: str, timeout: float = 15) -> None:
    """Until ``predicate()`` holds (the runtime reacts to watch events asynchronously)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def standin():
    server = StandIn().start()
    yield server
    server.close()


@pytest.fixture
async def predictor():
    """A small upstream answering like odahu-ml-server: the Service's pods, seen from here."""
    async def health(_request):
        return web.json_response({"status": "ok"}, headers={
            "Model-Name": "wine-model", "Model-Version": "1.2"})

    app = web.Application()
    app.router.add_get("/healthcheck", health)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield runner.addresses[0][1]
    await runner.cleanup()


@pytest.fixture
def settings(standin, tmp_path, predictor) -> KubernetesSettings:
    return KubernetesSettings(kubeconfig=str(standin.write_kubeconfig(tmp_path / "kubeconfig")),
                              service_host="127.0.0.1", service_port=predictor,
                              activation_timeout=30)


class Harness:
    def __init__(self, settings: KubernetesSettings) -> None:
        self.table = RouteTable()
        self.statuses: list[tuple[str, ModelDeploymentStatus]] = []
        self.runtime = KubernetesRuntime(settings, self.table,
                                         lambda i, s: self.statuses.append((i, s)))

    def state(self, dep_id: str = "wine") -> str | None:
        status = self.runtime.status(dep_id)
        return status.state if status else None


@pytest.fixture
async def harness(settings):
    h = Harness(settings)
    await h.runtime.start()
    yield h
    await h.runtime.close()


def names(standin: StandIn) -> dict[str, list[str]]:
    return {k: [o["metadata"]["name"] for o in standin.objects(k)] for k in KINDS}


async def test_apply_creates_owned_labelled_objects_with_server_side_apply(harness, standin):
    await harness.runtime.apply(dep())
    assert names(standin) == {"Deployment": ["wine"], "Service": ["wine"],
                              "HorizontalPodAutoscaler": ["wine"], "ScaledObject": [],
                              "PodDisruptionBudget": [], "Pod": []}
    patches = [r for r in standin.writes() if r.method == "PATCH"]
    assert len(patches) == 3
    for r in patches:
        assert r.content_type == "application/apply-patch+yaml"
        assert r.query["fieldManager"] == "mlgate" and r.query["force"] == "true"
    deployment = standin.get("Deployment", "wine")
    assert [m["manager"] for m in deployment["metadata"]["managedFields"]] == ["mlgate"]
    for kind in ("Service", "HorizontalPodAutoscaler"):
        (owner,) = standin.get(kind, "wine")["metadata"]["ownerReferences"]
        assert owner["uid"] == deployment["metadata"]["uid"]
    selected = standin.objects("Service", labels="app.kubernetes.io/managed-by=mlgate,"
                                                 "mlgate.io/deployment=wine")
    assert [s["metadata"]["name"] for s in selected] == ["wine"]


async def test_status_follows_the_rollout_and_routing_follows_the_status(harness, standin):
    await harness.runtime.apply(dep())
    await wait_for(lambda: harness.state() == "Processing", "Processing")
    assert harness.table.get("wine").replicas == []
    standin.start_rollout("wine")
    standin.add_pod("wine", "a1", {"waiting": {"reason": "ContainerCreating"}}, ready=False)
    await wait_for(lambda: "progressing" in harness.runtime.status("wine").reason,
                   "the progress message")
    assert harness.state() == "Processing"
    standin.roll_out("wine")
    await wait_for(lambda: harness.state() == "Ready", "Ready")
    status = harness.runtime.status("wine")
    assert (status.replicas, status.available_replicas) == (1, 1)
    await wait_for(lambda: harness.table.get("wine").replicas, "a published replica")
    entry = harness.table.get("wine")
    port = harness.runtime.settings.service_port
    assert [r.address for r in entry.replicas] == [f"127.0.0.1:{port}"]
    assert (entry.model_name, entry.model_version) == ("wine-model", "1.2")
    await wait_for(lambda: harness.runtime.status("wine").model_name == "wine-model",
                   "the model name in the status")
    states = [s.state for i, s in harness.statuses if i == "wine"]
    assert states[0] == "Processing" and states[-1] == "Ready"


async def test_image_change_rolls_out_a_new_pod_template(harness, standin):
    await harness.runtime.apply(dep())
    standin.roll_out("wine")
    await wait_for(lambda: harness.state() == "Ready", "Ready")
    before = len(standin.writes())
    result = await harness.runtime.apply(dep(image="registry.example.com/wine:2.0"))
    assert [o["kind"] for o in result.apply] == ["Deployment"] and result.delete == []
    assert len(standin.writes()) == before + 1
    stored = standin.get("Deployment", "wine")
    (container,) = stored["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/wine:2.0"
    assert stored["metadata"]["generation"] == 2
    await wait_for(lambda: harness.state() == "Processing", "Processing for the new generation")
    standin.roll_out("wine")
    await wait_for(lambda: harness.state() == "Ready", "Ready again")


async def test_scale_bounds_move_between_hpa_pdb_and_scaledobject(harness, standin):
    await harness.runtime.apply(dep(minReplicas=1, maxReplicas=3))
    hpa = standin.get("HorizontalPodAutoscaler", "wine")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 3)
    assert standin.get("PodDisruptionBudget", "wine") is None

    await harness.runtime.apply(dep(minReplicas=2, maxReplicas=5))
    hpa = standin.get("HorizontalPodAutoscaler", "wine")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    assert standin.get("PodDisruptionBudget", "wine")["spec"]["maxUnavailable"] == 1

    await harness.runtime.apply(dep(minReplicas=0, maxReplicas=2))
    assert names(standin)["HorizontalPodAutoscaler"] == []
    assert names(standin)["PodDisruptionBudget"] == []
    so = standin.get("ScaledObject", "wine")["spec"]
    assert (so["minReplicaCount"], so["maxReplicaCount"]) == (0, 2)
    assert harness.table.get("wine").activation_timeout == 30


async def test_image_pull_failure_is_reported_failed_with_its_reason(harness, standin):
    await harness.runtime.apply(dep(image="registry.example.com/nope:1"))
    standin.fail_image_pull("wine")
    await wait_for(lambda: harness.state() == "Failed", "Failed")
    reason = harness.runtime.status("wine").reason
    assert "ImagePullBackOff" in reason and "registry.example.com/nope:1" in reason
    assert harness.table.get("wine").replicas == []


async def test_delete_removes_every_object_and_the_route(harness, standin):
    await harness.runtime.apply(dep(minReplicas=2))
    standin.roll_out("wine")
    standin.add_pod("wine", "a1", {"running": {}}, ready=True)
    await wait_for(lambda: harness.state() == "Ready", "Ready")
    await harness.runtime.delete("wine")
    assert all(v == [] for v in names(standin).values()), names(standin)
    assert harness.table.get("wine") is None
    assert harness.statuses[-1][1].state == "Deleting"
    deletes = [r for r in standin.writes() if r.method == "DELETE"]
    assert {r.query.get("propagationPolicy") for r in deletes} == {"Background"}
    await wait_for(lambda: harness.runtime.status("wine") is None, "the status to be dropped")


async def test_a_restarted_controller_readopts_without_writing(settings, standin):
    first = Harness(settings)
    await first.runtime.start()
    await first.runtime.apply(dep(minReplicas=2))
    standin.scale("wine", 2)  # the HPA's floor
    standin.roll_out("wine")
    await wait_for(lambda: first.state() == "Ready", "Ready")
    await first.runtime.close()
    writes = len(standin.writes())

    second = Harness(settings)
    await second.runtime.start()
    try:
        assert second.runtime.deployment_ids() == ["wine"]
        assert second.state() == "Ready"  # known from the initial list, before any apply
        result = await second.runtime.apply(dep(minReplicas=2))
        assert result.empty
        assert len(standin.writes()) == writes
        await second.runtime.apply(dep(minReplicas=2, maxReplicas=4))  # a real change
        assert standin.get("HorizontalPodAutoscaler", "wine")["spec"]["maxReplicas"] == 4
        assert standin.get("Deployment", "wine")["spec"]["replicas"] == 2  # the HPA's, kept
        assert {k: len(v) for k, v in names(standin).items()} == {
            "Deployment": 1, "Service": 1, "HorizontalPodAutoscaler": 1, "ScaledObject": 0,
            "PodDisruptionBudget": 1, "Pod": 0}
        await wait_for(lambda: second.table.get("wine").replicas, "the route")
    finally:
        await second.runtime.close()


async def test_watch_relists_after_410_and_sees_what_changed_meanwhile(harness, standin):
    await harness.runtime.apply(dep())
    standin.roll_out("wine")
    await wait_for(lambda: harness.state() == "Ready", "Ready")
    lists_before = sum(1 for r in standin.requests()
                       if r.method == "GET" and "watch" not in r.query)
    standin.miss_events(lambda: standin.fail_image_pull("wine"))
    await wait_for(lambda: harness.state() == "Failed", "Failed after the re-list")
    lists_after = sum(1 for r in standin.requests()
                      if r.method == "GET" and "watch" not in r.query)
    assert lists_after > lists_before
    standin.miss_events(lambda: standin.delete("Deployment", "wine"))
    await wait_for(lambda: harness.runtime.status("wine").reason.startswith("waiting for"),
                   "the deletion to be seen")
    assert harness.table.get("wine").replicas == []


async def test_minreplicas_zero_without_keda_is_refused_clearly(tmp_path, settings):
    no_keda = StandIn(keda=False).start()
    try:
        s = KubernetesSettings(kubeconfig=str(no_keda.write_kubeconfig(tmp_path / "kc2")))
        runtime = KubernetesRuntime(s, RouteTable())
        await runtime.start()
        try:
            with pytest.raises(KubeRejected, match="needs KEDA"):
                await runtime.apply(dep(minReplicas=0))
            await runtime.apply(dep(minReplicas=1))  # the rest works without KEDA
        finally:
            await runtime.close()
    finally:
        no_keda.close()


async def test_api_refusals_are_rejections(tmp_path, standin):
    kubeconfig = standin.write_kubeconfig(tmp_path / "kc", namespace="x")
    missing_ns = KubernetesRuntime(KubernetesSettings(kubeconfig=str(kubeconfig),
                                                      namespace="nowhere"))
    await missing_ns.start()
    try:
        with pytest.raises(KubeRejected, match='namespaces "nowhere" not found'):
            await missing_ns.apply(dep())
    finally:
        await missing_ns.close()

    bad_token = tmp_path / "bad"
    bad_token.write_text(kubeconfig.read_text().replace("stand-in-token", "wrong"))
    unauthorized = KubernetesRuntime(KubernetesSettings(kubeconfig=str(bad_token)))
    with pytest.raises(KubeRejected) as info:
        await unauthorized.start()
    assert info.value.code == 401

    with pytest.raises(ValueError, match="container image"):
        await KubernetesRuntime(KubernetesSettings(kubeconfig=str(kubeconfig))).apply(
            dep(image="file:///models/wine"))


async def test_a_request_is_held_while_the_deployment_scales_from_zero(harness, standin):
    await harness.runtime.apply(dep(minReplicas=0))
    standin.scale("wine", 0)
    standin.roll_out("wine")
    await wait_for(lambda: harness.state() == "Ready", "Ready at zero replicas")
    entry = harness.table.get("wine")
    assert entry.replicas == [] and entry.activation_timeout == 30
    pool = UpstreamPool(Timeouts())
    await pool.start()
    try:
        held = asyncio.create_task(send_to_deployment(pool, entry, "GET", "/healthcheck", {}, b""))
        for _ in range(100):
            await asyncio.sleep(0)
        assert not held.done()  # waiting for a replica, not answered 503
        standin.scale("wine", 1)  # what KEDA does when the in-flight metric goes above 0
        standin.roll_out("wine")
        response = await asyncio.wait_for(held, 30)
        assert response.status == 200
        assert response.headers["Model-Name"] == "wine-model"
    finally:
        await pool.close()
