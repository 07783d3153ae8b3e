import pytest

from deploy.control.deployments import parse_deployment
from deploy.control.quantity import parse_quantity
from deploy.control.resource import ValidationError


def manifest(**spec):
    base = {"image": "file:///m", "predictor": "odahu-ml-server"}
    base.update(spec)
    return {"kind": "ModelDeployment", "id": "wine-12345", "spec": base}


def test_odahu_defaults():
    dep = parse_deployment(manifest())
    d = dep.to_dict()["spec"]
    assert d["minReplicas"] == 0 and d["maxReplicas"] == 1
    assert d["resources"] == {"requests": {"cpu": "125m", "memory": "128Mi"},
                              "limits": {"cpu": "250m", "memory": "256Mi"}}
    assert d["roleName"] == "role-wine-12345"


def test_max_defaults_to_min():
    assert parse_deployment(manifest(minReplicas=3)).spec.max_replicas == 3


def test_partial_resources_keep_other_defaults():
    dep = parse_deployment(manifest(resources={"limits": {"cpu": "1", "gpu": "1"}}))
    assert dep.spec.resources.limits.to_dict() == {"cpu": "1", "memory": "256Mi", "gpu": "1"}


@pytest.mark.parametrize("dep_id", ["a", "wine-12345", "a" * 63, "x1-2"])
def test_valid_ids(dep_id):
    assert parse_deployment({**manifest(), "id": dep_id}).id == dep_id


@pytest.mark.parametrize("dep_id", ["", "1abc", "Wine", "a_b", "a-", "a" * 64, "a.b", None, 5])
def test_invalid_ids(dep_id):
    with pytest.raises(ValidationError, match="ID"):
        parse_deployment({**manifest(), "id": dep_id})


@pytest.mark.parametrize(("spec", "message"), [
    ({"image": ""}, "empty image parameter"),
    ({"predictor": ""}, "empty predictor parameter"),
    ({"predictor": "tf-serving"}, "predictor 'tf-serving' is not supported"),
    ({"minReplicas": -1}, "minimum number of replicas parameter must not be less than 0"),
    ({"maxReplicas": 0}, "maximum number of replicas parameter must not be less than 1"),
    ({"minReplicas": 3, "maxReplicas": 2}, "must not be less than minimum number"),
    ({"minReplicas": "2"}, "minReplicas must be an integer"),
    ({"livenessProbeInitialDelay": -1}, "livenessProbeInitialDelay must be non-negative"),
    ({"readinessProbeInitialDelay": -5}, "readinessProbeInitialDelay must be non-negative"),
    ({"resources": {"limits": {"cpu": "lots"}}}, "resources.limits.cpu"),
    ({"resources": {"requests": {"disk": "1"}}}, "unknown resources.requests field"),
    ({"replicas": 2}, "unknown spec field(s): replicas"),
])
def test_each_error_is_named(spec, message):
    with pytest.raises(ValidationError) as info:
        parse_deployment(manifest(**spec))
    assert str(info.value).startswith("Validation of model deployment is failed: ")
    assert message in str(info.value)


def test_all_errors_are_reported_together():
    with pytest.raises(ValidationError) as info:
        parse_deployment({"id": "Bad", "spec": {"minReplicas": -1}})
    assert len(info.value.errors) == 4  # id, image, predictor, minReplicas


@pytest.mark.parametrize(("text", "value"), [
    ("125m", "0.125"), ("1", "1"), ("128Mi", str(128 * 2**20)), ("1Gi", str(2**30)),
    ("1e3", "1E+3"), ("2k", "2000"),
])
def test_quantities(text, value):
    assert parse_quantity(text) == type(parse_quantity("1"))(value)


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "-1", "5 Gi", "1XB"])
def test_bad_quantities(text):
    with pytest.raises(ValueError):
        parse_quantity(text)
