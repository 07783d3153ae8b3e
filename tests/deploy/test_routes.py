"""ModelRoute validation (ODAHU's rules, user routes under /custom/) and status."""

import pytest

from deploy.config import Settings
from deploy.control.autoscaler import ScalingPolicy
from deploy.control.deployments import parse_deployment
from deploy.control.reconciler import Reconciler
from deploy.control.resource import ValidationError
from deploy.control.routes import parse_route, route_from_stored, route_status, traffic_route
from deploy.control.store import Store
from deploy.local.runtime import LocalRuntime
from gateway import RouteTable, StickyKey

EXISTING = {"wine-v1", "wine-v2"}.__contains__


def route(**spec):
    base = {"urlPrefix": "/custom/wine", "modelDeployments": [{"mdName": "wine-v1"}]}
    base.update(spec)
    return {"kind": "ModelRoute", "id": "wine-ab", "spec": base}


def test_single_target_defaults_to_weight_100():
    parsed = parse_route(route(), EXISTING)
    assert parsed.spec.model_deployments[0].weight == 100 and not parsed.default


def test_split_and_mirror():
    parsed = parse_route(route(modelDeployments=[{"mdName": "wine-v1", "weight": 70},
                                                 {"mdName": "wine-v2", "weight": 30}],
                               mirror="wine-v2"), EXISTING)
    assert parsed.to_dict()["spec"] == {
        "urlPrefix": "/custom/wine", "mirror": "wine-v2",
        "modelDeployments": [{"mdName": "wine-v1", "weight": 70},
                             {"mdName": "wine-v2", "weight": 30}]}


@pytest.mark.parametrize(("spec", "fragment"), [
    ({"urlPrefix": ""}, "empty URL Prefix"),
    ({"urlPrefix": "custom/x"}, "must start with slash"),
    ({"urlPrefix": "/model/wine"}, "is forbidden"),
    ({"urlPrefix": "/custom/"}, "must be /custom/<name>"),
    ({"urlPrefix": "/custom/a b"}, "must be /custom/<name>"),
    ({"modelDeployments": []}, "at least one element"),
    ({"modelDeployments": [{"mdName": "wine-v1", "weight": 50}]}, "100 weight"),
    ({"modelDeployments": [{"mdName": "nope"}]}, 'entity "nope" is not found'),
    ({"modelDeployments": [{"mdName": "wine-v1", "weight": 60},
                           {"mdName": "wine-v2", "weight": 30}]}, "does not equal 100"),
    ({"modelDeployments": [{"mdName": "wine-v1", "weight": 100}, {"mdName": "wine-v2"}]},
     "weights must be present"),
    ({"modelDeployments": [{"mdName": "wine-v1", "weight": 50},
                           {"mdName": "wine-v1", "weight": 50}]}, "listed twice"),
    ({"modelDeployments": [{"mdName": "wine-v1", "weight": "all"}]}, "integer from 0 to 100"),
    ({"mirror": "ghost"}, 'mirror: entity "ghost" is not found'),
    ({"extra": 1}, "unknown spec field"),
])
def test_each_problem_is_named(spec, fragment):
    with pytest.raises(ValidationError, match="Validation of model route is failed") as err:
        parse_route(route(**spec), EXISTING)
    assert fragment in str(err.value)


def test_every_problem_at_once():
    with pytest.raises(ValidationError) as err:
        parse_route({"id": "Bad_Id", "default": True,
                     "spec": {"urlPrefix": "/x", "modelDeployments": []}}, EXISTING)
    assert len(err.value.errors) == 4


def test_status_ready_failed_or_processing():
    parsed = parse_route(route(mirror="wine-v2"), EXISTING)
    ready = route_status(parsed, {"wine-v1": "Ready", "wine-v2": "Processing"}, "http://h:1/")
    assert (ready.state, ready.edge_url) == ("Ready", "http://h:1/custom/wine")
    assert route_status(parsed, {"wine-v1": "Ready"}, "http://h").state == "Failed"
    assert route_status(parsed, {"wine-v1": "Deleting", "wine-v2": "Ready"},
                        "http://h").state == "Processing"


# -- mlgate's traffic fields: sticky, mirrorPercentage, override --------------------------------


def test_traffic_fields_default_to_odahu_behaviour():
    served = traffic_route(parse_route(route(mirror="wine-v2"), EXISTING))
    assert (served.sticky, served.mirror, served.mirror_percent) == (None, "wine-v2", 100.0)
    assert served.override_roles == {"admin", "odahu_admin"}
    assert "sticky" not in parse_route(route(), EXISTING).to_dict()["spec"]


@pytest.mark.parametrize(("sticky", "source", "name"), [
    ({"header": "X-User-Id"}, "header", "X-User-Id"),
    ({"cookie": "uid"}, "cookie", "uid"),
    ({"jwtClaim": "sub"}, "claim", "sub"),
    ({"jwtClaim": "https://example.com/tenant"}, "claim", "https://example.com/tenant"),
])
def test_sticky_sources(sticky, source, name):
    parsed = parse_route(route(sticky=sticky), EXISTING)
    assert parsed.to_dict()["spec"]["sticky"] == sticky
    assert traffic_route(parsed).sticky == StickyKey(source, name)


def test_traffic_fields_round_trip_through_the_store_shape():
    parsed = parse_route(route(mirror="wine-v2", mirrorPercentage=12.5,
                               sticky={"cookie": "uid"}, override={"roles": ["qa"]}), EXISTING)
    stored = route_from_stored("wine-ab", False, parsed.to_dict()["spec"], "t0", "t1")
    assert stored.to_dict()["spec"] == parsed.to_dict()["spec"]
    served = traffic_route(stored)
    assert (served.mirror_percent, served.override_roles) == (12.5, {"qa"})
    assert parse_route(route(override={"roles": []}), EXISTING).spec.override_roles == []
    assert traffic_route(parse_route(route(override={"roles": []}),
                                     EXISTING)).override_roles == frozenset()


@pytest.mark.parametrize(("spec", "fragment"), [
    ({"mirrorPercentage": 50}, "mirrorPercentage needs a mirror"),
    ({"mirror": "wine-v2", "mirrorPercentage": 101}, "mirrorPercentage must be a number"),
    ({"mirror": "wine-v2", "mirrorPercentage": "10%"}, "mirrorPercentage must be a number"),
    ({"mirror": "wine-v2", "mirrorPercentage": True}, "mirrorPercentage must be a number"),
    ({"sticky": "x-user"}, "sticky must be an object"),
    ({"sticky": {}}, "sticky must be an object"),
    ({"sticky": {"query": "u"}}, "sticky: unknown field(s) query"),
    ({"sticky": {"header": "x", "cookie": "y"}}, "exactly one of"),
    ({"sticky": {"header": "x user"}}, "sticky.header must be an HTTP header name"),
    ({"sticky": {"cookie": ""}}, "sticky.cookie must be an HTTP cookie name"),
    ({"sticky": {"jwtClaim": 3}}, "sticky.jwtClaim must be a JWT claim name"),
    ({"override": {"roles": "admin"}}, "override.roles must be a list"),
    ({"override": {"roles": [""]}}, "override.roles must be a list"),
    ({"override": {"header": "x"}}, "override must be an object with one field, roles"),
])
def test_traffic_field_problems_are_named(spec, fragment):
    with pytest.raises(ValidationError, match="Validation of model route is failed") as err:
        parse_route(route(**spec), EXISTING)
    assert fragment in str(err.value)


def test_reconciler_publishes_routes_when_the_store_changes(tmp_path):
    store = Store(tmp_path / "state.db")
    table = RouteTable()
    Reconciler(store, LocalRuntime(Settings(data_dir=str(tmp_path))), table, ScalingPolicy(), 1)
    for dep_id in ("wine-v1", "wine-v2"):
        store.create_deployment(parse_deployment({"id": dep_id, "spec": {
            "image": "file:///m", "predictor": "odahu-ml-server"}}))
    assert table.routes() == []  # default routes are served as /model/<id>
    store.create_route(parse_route(route(modelDeployments=[
        {"mdName": "wine-v1", "weight": 90}, {"mdName": "wine-v2", "weight": 10}]), EXISTING))
    [published] = table.routes()
    assert [(t.deployment_id, t.weight) for t in published.targets] == [("wine-v1", 90),
                                                                         ("wine-v2", 10)]
    store.update_route(parse_route(route(modelDeployments=[
        {"mdName": "wine-v1", "weight": 0}, {"mdName": "wine-v2", "weight": 100}]), EXISTING))
    assert [t.weight for t in table.match("/custom/wine/x").targets] == [0, 100]
    store.delete_route("wine-ab")
    assert table.match("/custom/wine/x") is None
    store.close()
