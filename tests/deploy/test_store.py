"""The SQLite store: deployments with their default route, generations, routes."""

import pytest

from deploy.control.deployments import ModelDeploymentStatus, parse_deployment
from deploy.control.routes import parse_route
from deploy.control.store import AlreadyExists, Conflict, Forbidden, NotFound, Store


def dep(dep_id="wine", **spec):
    return parse_deployment({"id": dep_id, "spec": {"image": "file:///m",
                                                    "predictor": "odahu-ml-server", **spec}})


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


def test_create_makes_processing_deployment_and_default_route(store):
    created = store.create_deployment(dep())
    assert created.status.state == "Processing" and created.generation == 1
    route = store.default_route("wine")
    assert route.default and route.id.startswith("wine-") and len(route.id) == len("wine-") + 5
    assert route.spec.url_prefix == "/model/wine"
    assert [(t.md_name, t.weight) for t in route.spec.model_deployments] == [("wine", 100)]
    with pytest.raises(AlreadyExists, match='entity "wine" already exists'):
        store.create_deployment(dep())


def test_update_bumps_generation_and_refuses_stale_status(store):
    store.create_deployment(dep())
    assert store.set_status("wine", 1, ModelDeploymentStatus("Ready", 1, 1, "wine", "1.0"))
    updated = store.update_deployment(dep(maxReplicas=3))
    assert (updated.generation, updated.status.state) == (2, "Processing")
    assert updated.status.model_name == "wine"
    assert not store.set_status("wine", 1, ModelDeploymentStatus("Ready"))
    assert store.get_deployment("wine").status.state == "Processing"
    with pytest.raises(NotFound):
        store.update_deployment(dep("other"))


def test_apply_creates_updates_or_leaves_alone(store):
    assert store.apply_deployment(dep())[1] == "created"
    assert store.apply_deployment(dep())[1] == "unchanged"
    assert store.apply_deployment(dep(maxReplicas=2))[1] == "updated"


def test_delete_marks_then_removes_with_default_route(store):
    store.create_deployment(dep())
    assert store.mark_deleting("wine").status.state == "Deleting"
    store.set_status("wine", 1, ModelDeploymentStatus("Ready"))
    assert store.get_deployment("wine").status.state == "Deleting"
    with pytest.raises(Conflict):
        store.update_deployment(dep())
    store.remove_deployment("wine")
    assert store.list_deployments() == [] and store.list_routes() == []
    with pytest.raises(NotFound):
        store.mark_deleting("wine")


def test_state_survives_reopening(tmp_path):
    first = Store(tmp_path / "s.db")
    first.create_deployment(dep(minReplicas=2))
    first.close()
    again = Store(tmp_path / "s.db")
    assert again.get_deployment("wine").spec.min_replicas == 2
    assert again.default_route("wine").spec.url_prefix == "/model/wine"
    again.close()


def test_routes_crud_and_default_routes_are_read_only(store):
    store.create_deployment(dep())
    calls = []
    store.subscribe(lambda: calls.append(1))
    route = parse_route({"id": "r1", "spec": {"urlPrefix": "/custom/r1",
                                              "modelDeployments": [{"mdName": "wine"}]}},
                        store.has_deployment)
    store.create_route(route)
    assert calls
    with pytest.raises(AlreadyExists):
        store.create_route(route)
    route.spec.mirror = "wine"
    assert store.update_route(route).spec.mirror == "wine"
    default_id = store.default_route_id("wine")
    with pytest.raises(Forbidden, match="unable to update default route"):
        store.update_route(store.get_route(default_id))
    with pytest.raises(Forbidden, match="unable to delete default route"):
        store.delete_route(default_id)
    store.delete_route("r1")
    with pytest.raises(NotFound):
        store.get_route("r1")
