"""ModelRoute validation (ODAHU's rules, user routes under /custom/) and status."""

import pytest

from deploy.models import ValidationError
from deploy.routes import parse_route, route_status

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
