"""The Kubernetes runtime against the stand-in API server, driven by the real control plane.

Each harness is the state store, the reconciler and the gateway's routing table of
``mlgate up`` around a ``KubernetesRuntime``: a deployment is written to the store
(as the API does), the reconciler hands it to the runtime, the runtime applies it to
the stand-in, and status and routing come back through watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from deploy.config import KubernetesSettings
from deploy.control.autoscaler import ScalingPolicy
from deploy.control.deployments import ModelDeployment, ModelDeploymentStatus, parse_deployment
from deploy.control.reconciler import Reconciler
from deploy.control.store import NotFound, Store
from deploy.k8s.client import KubeRejected
from deploy.k8s.runtime import KubernetesRuntime
from gateway import RouteTable, Timeouts, UpstreamPool
from gateway.proxy import hold_for_replica, send_to_deployment
from tests.k8s_standin import StandIn

KINDS = ("Deployment", "Service", "HorizontalPodAutoscaler", "ScaledObject",
         "PodDisruptionBudget", "Pod")


def dep(image="registry.example.com/wine:1.0", dep_id="wine", **spec) -> ModelDeployment:
    return parse_deployment({"id": dep_id, "spec": {
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
                              service_host="127.0.0.1", service_port=predictor)


class RecordingStore(Store):
    """The real store, remembering every status it was given (in order)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.statuses: list[tuple[str, ModelDeploymentStatus]] = []

    def set_status(self, dep_id: str, generation: int, status: ModelDeploymentStatus) -> bool:
        stored = super().set_status(dep_id, generation, status)
        if stored:
            self.statuses.append((dep_id, copy.deepcopy(status)))
        return stored

    def mark_deleting(self, dep_id: str) -> ModelDeployment:
        marked = super().mark_deleting(dep_id)
        self.statuses.append((dep_id, copy.deepcopy(marked.status)))
        return marked


class Harness:
    def __init__(self, settings: KubernetesSettings, state: Path) -> None:
        self.store = RecordingStore(state)
        self.table = RouteTable()
        self.runtime = KubernetesRuntime(settings)
        self.reconciler = Reconciler(self.store, self.runtime, self.table,
                                     ScalingPolicy(cold_start_timeout=30), interval=0.05)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> Harness:
        await self.runtime.start(self.reconciler.wake)
        self._task = asyncio.create_task(self.reconciler.run())
        return self

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.runtime.close()
        self.store.close()

    @property
    def statuses(self) -> list[tuple[str, ModelDeploymentStatus]]:
        return self.store.statuses

    def status(self, dep_id: str = "wine") -> ModelDeploymentStatus | None:
        try:
            return self.store.get_deployment(dep_id).status
        except NotFound:
            return None

    def state(self, dep_id: str = "wine") -> str | None:
        status = self.status(dep_id)
        return status.state if status else None

    async def apply(self, deployment: ModelDeployment) -> None:
        """Store it (as the API does) and wait until the runtime carried it out."""
        stored, _ = self.store.apply_deployment(deployment)
        self.reconciler.wake()
        await wait_for(lambda: (o := self.runtime.observe(stored.id)) is not None
                       and o.generation == stored.generation, f"{stored.id} to be applied")

    async def delete(self, dep_id: str = "wine") -> None:
        """Delete it through the store (as the API does) and wait until it is gone."""
        self.store.mark_deleting(dep_id)
        self.reconciler.wake()
        await wait_for(lambda: self.status(dep_id) is None, f"{dep_id} to be deleted")


@pytest.fixture
async def harness(settings, tmp_path):
    h = await Harness(settings, tmp_path / "state.db").start()
    yield h
    await h.close()


def names(standin: StandIn) -> dict[str, list[str]]:
    return {k: [o["metadata"]["name"] for o in standin.objects(k)] for k in KINDS}


def patches_since(standin: StandIn, count: int) -> list[str]:
    return [r.path.rsplit("/", 2)[-2] for r in standin.writes()[count:] if r.method == "PATCH"]


async def test_apply_creates_owned_labelled_objects_with_server_side_apply(harness, standin):
    await harness.apply(dep())
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
    await harness.apply(dep())
    await wait_for(lambda: harness.state() == "Processing", "Processing")
    assert harness.table.get("wine").replicas == []
    standin.start_rollout("wine")
    standin.add_pod("wine", "a1", {"waiting": {"reason": "ContainerCreating"}}, ready=False)
    await wait_for(lambda: "progressing" in harness.status().reason, "the progress message")
    assert harness.state() == "Processing"
    standin.roll_out("wine")
    await wait_for(lambda: harness.state() == "Ready", "Ready")
    status = harness.status()
    assert (status.replicas, status.available_replicas) == (1, 1)
    await wait_for(lambda: harness.table.get("wine").replicas, "a published replica")
    entry = harness.table.get("wine")
    port = harness.runtime.settings.service_port
    assert [r.address for r in entry.replicas] == [f"127.0.0.1:{port}"]
    await wait_for(lambda: harness.table.get("wine").model_name == "wine-model",
                   "the model name in the table")
    entry = harness.table.get("wine")
    assert (entry.model_name, entry.model_version) == ("wine-model", "1.2")
    await wait_for(lambda: harness.status().model_name == "wine-model",
                   "the model name in the status")
    states = [s.state for i, s in harness.statuses if i == "wine"]
    assert states[0] == "Processing" and states[-1] == "Ready"


async def test_image_change_rolls_out_a_new_pod_template(harness, standin):
    await harness.apply(dep())
    standin.roll_out("wine")
    await wait_for(lambda: harness.state() == "Ready", "Ready")
    before = len(standin.writes())
    await harness.apply(dep(image="registry.example.com/wine:2.0"))
    assert patches_since(standin, before) == ["deployments"]
    assert not [r for r in standin.writes()[before:] if r.method == "DELETE"]
    assert len(standin.writes()) == before + 1
    stored = standin.get("Deployment", "wine")
    (container,) = stored["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/wine:2.0"
    assert stored["metadata"]["generation"] == 2
    await wait_for(lambda: harness.state() == "Processing", "Processing for the new generation")
    assert harness.table.get("wine").replicas  # the old pods serve during the rollout
    standin.roll_out("wine")
    await wait_for(lambda: harness.state() == "Ready", "Ready again")


async def test_scale_bounds_move_between_hpa_pdb_and_scaledobject(harness, standin):
    await harness.apply(dep(minReplicas=1, maxReplicas=3))
    hpa = standin.get("HorizontalPodAutoscaler", "wine")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 3)
    assert standin.get("PodDisruptionBudget", "wine") is None

    await harness.apply(dep(minReplicas=2, maxReplicas=5))
    hpa = standin.get("HorizontalPodAutoscaler", "wine")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    assert standin.get("PodDisruptionBudget", "wine")["spec"]["maxUnavailable"] == 1

    await harness.apply(dep(minReplicas=0, maxReplicas=2))
    assert names(standin)["HorizontalPodAutoscaler"] == []
    assert names(standin)["PodDisruptionBudget"] == []
    so = standin.get("ScaledObject", "wine")["spec"]
    assert (so["minReplicaCount"], so["maxReplicaCount"]) == (0, 2)
    assert harness.table.get("wine").cold_start_timeout == 30


async def test_image_pull_failure_is_reported_failed_with_its_reason(harness, standin):
    await harness.apply(dep(image="registry.example.com/nope:1"))
    standin.fail_image_pull("wine")
    await wait_for(lambda: harness.state() == "Failed", "Failed")
    reason = harness.status().reason
    assert "ImagePullBackOff" in reason and "registry.example.com/nope:1" in reason
    assert harness.table.get("wine").replicas == []
    assert "ImagePullBackOff" in harness.table.get("wine").unavailable_reason


async def test_delete_removes_every_object_and_the_route(harness, standin):
    await harness.apply(dep(minReplicas=2))
    standin.scale("wine", 2)  # the HPA's floor
    standin.roll_out("wine")
    standin.add_pod("wine", "a1", {"running": {}}, ready=True)
    await wait_for(lambda: harness.state() == "Ready", "Ready")
    await harness.delete("wine")
    assert all(v == [] for v in names(standin).values()), names(standin)
    assert harness.table.get("wine") is None
    assert harness.statuses[-1][1].state == "Deleting"
    deletes = [r for r in standin.writes() if r.method == "DELETE"]
    assert {r.query.get("propagationPolicy") for r in deletes} == {"Background"}
    await wait_for(lambda: harness.runtime.observe("wine") is None, "the runtime to forget it")
    assert harness.runtime.known() == set()


async def test_a_restarted_controller_readopts_without_writing(settings, standin, tmp_path):
    state = tmp_path / "state.db"
    first = await Harness(settings, state).start()
    await first.apply(dep(minReplicas=2))
    standin.scale("wine", 2)  # the HPA's floor
    standin.roll_out("wine")
    await wait_for(lambda: first.state() == "Ready", "Ready")
    await first.close()
    writes = len(standin.writes())

    second = await Harness(settings, state).start()  # same state store, same cluster
    try:
        assert second.state() == "Ready"  # known from the store, before any apply
        await wait_for(lambda: second.runtime.known() == {"wine"}, "the deployment re-adopted")
        await second.apply(dep(minReplicas=2))
        await wait_for(lambda: second.table.get("wine") and second.table.get("wine").replicas,
                       "the route")
        assert len(standin.writes()) == writes  # re-adopted: nothing written
        await second.apply(dep(minReplicas=2, maxReplicas=4))  # a real change
        assert standin.get("HorizontalPodAutoscaler", "wine")["spec"]["maxReplicas"] == 4
        assert standin.get("Deployment", "wine")["spec"]["replicas"] == 2  # the HPA's, kept
        assert {k: len(v) for k, v in names(standin).items()} == {
            "Deployment": 1, "Service": 1, "HorizontalPodAutoscaler": 1, "ScaledObject": 0,
            "PodDisruptionBudget": 1, "Pod": 0}
        await wait_for(lambda: second.table.get("wine").replicas, "the route")
    finally:
        await second.close()


async def test_objects_the_store_does_not_know_are_left_alone(settings, standin, tmp_path):
    first = await Harness(settings, tmp_path / "one.db").start()
    await first.apply(dep())
    await first.close()
    other = await Harness(settings, tmp_path / "other.db").start()  # a different, empty store
    try:
        await asyncio.sleep(0.3)  # several reconcile passes
        assert other.runtime.known() == set()
        assert names(standin)["Deployment"] == ["wine"]
        assert not [r for r in standin.writes() if r.method == "DELETE"]
    finally:
        await other.close()


async def test_watch_relists_after_410_and_sees_what_changed_meanwhile(harness, standin):
    await harness.apply(dep())
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
    await wait_for(lambda: harness.status().reason.startswith("waiting for"),
                   "the deletion to be seen")
    assert harness.table.get("wine").replicas == []


async def test_minreplicas_zero_without_keda_is_refused_clearly(tmp_path, settings):
    no_keda = StandIn(keda=False).start()
    try:
        s = KubernetesSettings(kubeconfig=str(no_keda.write_kubeconfig(tmp_path / "kc2")))
        h = await Harness(s, tmp_path / "state.db").start()
        try:
            await h.apply(dep(minReplicas=0))
            assert h.runtime.observe("wine").failure.startswith("minReplicas: 0 needs KEDA")
            await wait_for(lambda: h.state() == "Failed", "Failed")
            assert "needs KEDA" in h.status().reason
            await h.apply(dep(minReplicas=1))  # the rest works without KEDA
            assert h.runtime.observe("wine").failure == ""
            assert [o["metadata"]["name"] for o in no_keda.objects("HorizontalPodAutoscaler")] \
                == ["wine"]
        finally:
            await h.close()
    finally:
        no_keda.close()


async def test_api_refusals_are_rejections(tmp_path, standin):
    kubeconfig = standin.write_kubeconfig(tmp_path / "kc", namespace="x")
    missing_ns = await Harness(KubernetesSettings(kubeconfig=str(kubeconfig),
                                                  namespace="nowhere"), tmp_path / "a.db").start()
    try:
        await missing_ns.apply(dep())
        await wait_for(lambda: missing_ns.state() == "Failed", "Failed")
        assert 'namespaces "nowhere" not found' in missing_ns.status().reason
        await missing_ns.apply(dep(image="file:///models/wine", dep_id="local"))
        await wait_for(lambda: missing_ns.state("local") == "Failed", "Failed")
        assert "container image" in missing_ns.status("local").reason
    finally:
        await missing_ns.close()

    bad_token = tmp_path / "bad"
    bad_token.write_text(kubeconfig.read_text().replace("stand-in-token", "wrong"))
    unauthorized = KubernetesRuntime(KubernetesSettings(kubeconfig=str(bad_token)))
    with pytest.raises(KubeRejected) as info:
        await unauthorized.start(lambda: None)
    assert info.value.code == 401
    await unauthorized.close()


async def test_a_request_is_held_while_the_deployment_scales_from_zero(harness, standin):
    await harness.apply(dep(minReplicas=0))
    standin.roll_out("wine")  # one replica at first (the Deployment's default)
    await wait_for(lambda: harness.state() == "Ready", "Ready")
    standin.scale("wine", 0)  # KEDA parks it at zero
    standin.roll_out("wine")
    await wait_for(lambda: harness.status().replicas == 0, "zero replicas")
    assert harness.state() == "Ready"  # Ready at zero replicas
    entry = harness.table.get("wine")
    await wait_for(lambda: entry.replicas == [], "the route to be withdrawn")
    assert entry.replicas == [] and entry.cold_start_timeout == 30
    pool = UpstreamPool(Timeouts())
    await pool.start()
    try:
        async def call():
            await hold_for_replica(entry)
            return await send_to_deployment(pool, entry, "GET", "/healthcheck", {}, b"")

        held = asyncio.create_task(call())
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
