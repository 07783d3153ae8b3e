"""What the controller renders (pure), checked against Kubernetes' and KEDA's schemas."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from deploy.config import KubernetesSettings
from deploy.control.deployments import parse_deployment
from deploy.k8s.manifests import (
    ANNOTATION_HASH,
    LABEL_DEPLOYMENT,
    LABEL_MANAGED_BY,
    container_image,
    observed_hash,
    render,
    service_address,
    spec_hash,
)
from deploy.k8s.plan import ObjectRef, plan
from tests.conftest import ROOT

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "keda-scaledobject.json").read_text())
K8S_VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
K8S_DIR = ROOT / "ops" / "k8s"


def dep(**spec):
    return parse_deployment({"id": "wine", "spec": {
        "image": "registry.example.com/wine:1.0", "predictor": "odahu-ml-server", **spec}})


def validate(obj: dict, version: str) -> None:
    if obj["apiVersion"] == "keda.sh/v1alpha1":
        jsonschema.validate(obj, SCHEMA)
    else:
        kubernetes_validate.validate(obj, version, strict=True)


def by_kind(objects):
    return {o["kind"]: o for o in objects}


VARIANTS = {
    "odahu-min1": ({"minReplicas": 1, "maxReplicas": 3}, KubernetesSettings()),
    "triton-gpu-min2": ({"predictor": "triton", "minReplicas": 2, "maxReplicas": 4,
                         "resources": {"limits": {"gpu": "1", "cpu": "4", "memory": "8Gi"},
                                       "requests": {"cpu": "2", "memory": "4Gi"}},
                         "nodeSelector": {"gpu": "a100"}, "imagePullConnID": "regcred",
                         "annotations": {"team": "ml"}, "livenessProbeInitialDelay": 30,
                         "readinessProbeInitialDelay": 20}, KubernetesSettings()),
    "scale-to-zero-keda": ({"minReplicas": 0, "maxReplicas": 2}, KubernetesSettings()),
    "scale-to-zero-no-keda": ({"minReplicas": 0}, KubernetesSettings(keda=False)),
    "sidecar": ({"minReplicas": 1}, KubernetesSettings(sidecar=True, sidecar_records=True)),
}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_rendered_object_is_valid(variant, version):
    spec, settings = VARIANTS[variant]
    for obj in render(dep(**spec), settings, owner_uid="3f1c6c1e-0000-4000-8000-000000000001"):
        validate(obj, version)
        assert obj["metadata"]["labels"][LABEL_MANAGED_BY] == "mlgate"
        assert obj["metadata"]["labels"][LABEL_DEPLOYMENT] == "wine"
        assert obj["metadata"]["name"] == "wine"
        assert obj["metadata"]["namespace"] == settings.namespace


def test_predictor_ports_probes_resources_and_pod_settings():
    objects = by_kind(render(dep(**VARIANTS["triton-gpu-min2"][0]), KubernetesSettings()))
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example.com/wine:1.0"
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": 8000}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8000}
    assert container["livenessProbe"]["initialDelaySeconds"] == 30
    assert container["readinessProbe"]["initialDelaySeconds"] == 20
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"},
                                      "limits": {"cpu": "4", "memory": "8Gi",
                                                 "nvidia.com/gpu": "1"}}
    assert pod["nodeSelector"] == {"gpu": "a100"}
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert objects["Deployment"]["spec"]["template"]["metadata"]["annotations"]["team"] == "ml"
    assert "replicas" not in objects["Deployment"]["spec"]  # the autoscaler owns the count

    odahu = by_kind(render(dep(), KubernetesSettings()))["Deployment"]
    (container,) = odahu["spec"]["template"]["spec"]["containers"]
    assert container["ports"][0]["containerPort"] == 5000
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthcheck", "port": 5000}


def test_scale_bounds_choose_hpa_scaledobject_and_pdb():
    one = by_kind(render(dep(minReplicas=1, maxReplicas=3), KubernetesSettings()))
    assert set(one) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    hpa = one["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 3)
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": "wine"}

    two = by_kind(render(dep(minReplicas=2, maxReplicas=5), KubernetesSettings()))
    assert set(two) == {"Deployment", "Service", "HorizontalPodAutoscaler",
                        "PodDisruptionBudget"}
    assert two["PodDisruptionBudget"]["spec"] == {
        "maxUnavailable": 1, "selector": {"matchLabels": {LABEL_DEPLOYMENT: "wine"}}}

    zero = by_kind(render(dep(minReplicas=0, maxReplicas=2), KubernetesSettings()))
    assert set(zero) == {"Deployment", "Service", "ScaledObject"}
    so = zero["ScaledObject"]["spec"]
    assert (so["minReplicaCount"], so["maxReplicaCount"]) == (0, 2)
    (trigger,) = so["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["query"] == 'sum(mlgate_requests_in_flight{deployment="wine"})'

    no_keda = by_kind(render(dep(minReplicas=0), KubernetesSettings(keda=False)))
    assert no_keda["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 1


def test_sidecar_fronts_the_predictor():
    settings = KubernetesSettings(sidecar=True, sidecar_image="reg/mlgate:9")
    d = by_kind(render(dep(), settings))["Deployment"]
    predictor, sidecar = d["spec"]["template"]["spec"]["containers"]
    assert predictor["ports"][0]["name"] == "predictor"
    assert sidecar["image"] == "reg/mlgate:9"
    assert sidecar["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert sidecar["args"][:5] == ["sidecar", "--upstream", "127.0.0.1:5000", "--port", "8080"]
    assert "--no-records" in sidecar["args"]
    service = by_kind(render(dep(), settings))["Service"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_children_are_owned_by_the_deployment():
    objects = render(dep(minReplicas=2), KubernetesSettings(), owner_uid="uid-1")
    assert "ownerReferences" not in objects[0]["metadata"]
    for child in objects[1:]:
        (ref,) = child["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == (
            "Deployment", "wine", "uid-1", True)


def test_hash_changes_with_the_spec_only():
    a = render(dep(), KubernetesSettings())[0]
    b = render(dep(), KubernetesSettings())[0]
    c = render(parse_deployment({"id": "wine", "spec": {
        "image": "registry.example.com/wine:2.0", "predictor": "odahu-ml-server"}}),
        KubernetesSettings())[0]
    assert observed_hash(a) == observed_hash(b) == spec_hash(a)
    assert observed_hash(c) != observed_hash(a)


@pytest.mark.parametrize("image", ["file:///models/wine", "./models/wine", "/abs/model",
                                   "models:/wine/1", "s3://bucket/model"])
def test_local_images_are_refused(image):
    with pytest.raises(ValueError, match="container image"):
        container_image(image)


def test_service_address_template():
    assert service_address("wine", KubernetesSettings()) == ("wine.mlgate-models.svc", 80)
    custom = KubernetesSettings(service_host="{id}.{namespace}.svc.cluster.local",
                                service_port=8080)
    assert service_address("wine", custom) == ("wine.mlgate-models.svc.cluster.local", 8080)


def test_plan_applies_changes_and_deletes_what_is_no_longer_wanted():
    settings = KubernetesSettings()
    v1 = render(dep(minReplicas=2), settings, "uid")
    assert [o["kind"] for o in plan("wine", v1, []).apply] == [
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"]
    assert plan("wine", v1, v1).empty
    to_zero = render(dep(minReplicas=0), settings, "uid")
    keda_hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "keda-hpa-wine"}}
    p = plan("wine", to_zero, [*v1, keda_hpa])
    assert [o["kind"] for o in p.apply] == ["ScaledObject"]  # the pod template is unchanged
    assert p.delete == [ObjectRef("autoscaling/v2", "HorizontalPodAutoscaler", "wine"),
                        ObjectRef("policy/v1", "PodDisruptionBudget", "wine")]
    assert all(ANNOTATION_HASH in o["metadata"]["annotations"] for o in p.apply)


# -- the kustomize base -----------------------------------------------------------------

def manifests_in(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


K8S_FILES = sorted(p for p in K8S_DIR.glob("*.yaml")
                   if p.name not in ("kustomization.yaml", "mlgate.yaml", "deployments.yaml"))


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", K8S_FILES, ids=lambda p: p.name)
def test_files_under_deploy_k8s_are_valid(path, version):
    docs = manifests_in(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_cluster_config_is_a_valid_mlgate_config():
    from deploy.config import load_settings
    from deploy.control.manifest import load_deployments

    settings = load_settings(K8S_DIR / "mlgate.yaml", env={})
    assert settings.runtime == "kubernetes"
    assert settings.kubernetes.namespace == "mlgate-models"
    assert load_deployments(K8S_DIR / "deployments.yaml") == []
    role = next(d for d in manifests_in(K8S_DIR / "rbac.yaml") if d["kind"] == "Role")
    assert role["metadata"]["namespace"] == settings.kubernetes.namespace
    written = {r for rule in role["rules"] if "patch" in rule["verbs"]
               for r in rule["resources"]}
    assert written == {"deployments", "services", "horizontalpodautoscalers",
                       "poddisruptionbudgets", "scaledobjects", "jobs", "secrets"}
    assert all(rule["verbs"] == ["get", "list", "watch"] for rule in role["rules"]
               if {"pods", "events"} & set(rule["resources"]))


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubectl_kustomize_renders_valid_objects(version):
    out = subprocess.run(["kubectl", "kustomize", str(K8S_DIR)], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "Deployment", "Deployment", "Namespace", "Namespace",
                     "PersistentVolumeClaim", "Role", "RoleBinding", "Service", "Service",
                     "ServiceAccount", "ServiceAccount"]
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    mounted = {v["configMap"]["name"] for d in docs if d["kind"] == "Deployment"
               for v in d["spec"]["template"]["spec"]["volumes"] if "configMap" in v}
    assert mounted == {config["metadata"]["name"]}
    edge = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "mlgate")
    claims = {v["persistentVolumeClaim"]["claimName"]
              for v in edge["spec"]["template"]["spec"]["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"mlgate-state"}  # the state store survives a restart of the edge
