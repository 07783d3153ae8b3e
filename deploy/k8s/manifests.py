"""The Kubernetes objects behind one ModelDeployment, as plain dicts — pure functions.

``render(dep, settings, owner_uid)`` returns, in apply order:

- a ``Deployment`` running the model image (and, optionally, the mlgate sidecar in
  front of it), probes and port by predictor type;
- a ``Service`` in front of the pods (port ``http``);
- a ``HorizontalPodAutoscaler`` (``minReplicas >= 1``) or, for ``minReplicas: 0``, a KEDA
  ``ScaledObject`` fed by the gateway's ``mlgate_requests_in_flight`` metric;
- a ``PodDisruptionBudget`` when ``minReplicas >= 2``.

Every object is named after the deployment id, carries the labels of ``object_labels``
(so it can be listed and garbage-collected by label) and an ``mlgate.io/spec-hash``
annotation: the controller re-applies an object only when that hash changed, so a
restart re-adopts what exists without writing anything. The children are owned by the
model's Deployment (``owner_uid``), so deleting it collects them too.

The Deployment has no ``spec.replicas``: the autoscaler owns the replica count, and
applying a count would fight it on every reconcile.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from deploy.config import KubernetesSettings
from deploy.control.deployments import ModelDeployment
from deploy.control.images import FILE_SCHEME

Manifest = dict[str, Any]

FIELD_MANAGER = "mlgate"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_DEPLOYMENT = "mlgate.io/deployment"
ANNOTATION_HASH = "mlgate.io/spec-hash"
ANNOTATION_PREDICTOR = "mlgate.io/predictor"
MANAGED_BY = {LABEL_MANAGED_BY: FIELD_MANAGER}

PREDICTOR_CONTAINER = "predictor"
SIDECAR_CONTAINER = "mlgate-sidecar"
SERVING_PORT_NAME = "http"
SIDECAR_VOLUME = "mlgate-data"
SIDECAR_DATA_DIR = "/var/lib/mlgate"  # the sidecar's spool; an emptyDir
GPU_RESOURCE = "nvidia.com/gpu"

# (apiVersion, kind) of everything the controller may create for a deployment, in apply order.
DEPLOYMENT = ("apps/v1", "Deployment")
SERVICE = ("v1", "Service")
HPA = ("autoscaling/v2", "HorizontalPodAutoscaler")
SCALED_OBJECT = ("keda.sh/v1alpha1", "ScaledObject")
PDB = ("policy/v1", "PodDisruptionBudget")
MANAGED_KINDS = (DEPLOYMENT, SERVICE, HPA, SCALED_OBJECT, PDB)

IN_FLIGHT_METRIC = "mlgate_requests_in_flight"


@dataclass(frozen=True, slots=True)
class PredictorPorts:
    port: int
    liveness_path: str
    readiness_path: str


PREDICTORS = {
    "odahu-ml-server": PredictorPorts(5000, "/healthcheck", "/healthcheck"),
    "triton": PredictorPorts(8000, "/v2/health/live", "/v2/health/ready"),
}


def kind_of(obj: Manifest) -> tuple[str, str]:
    return obj["apiVersion"], obj["kind"]


def container_image(image: str) -> str:
    """The image reference a pod can pull; ``ValueError`` for what only the local runtime runs."""
    if image.startswith((FILE_SCHEME, "/", ".", "models:/")) or "://" in image:
        raise ValueError(
            f"the kubernetes runtime needs a container image, not {image!r}: package the "
            "model into an image (e.g. registry.example.com/wine:1.0) or use runtime: local")
    return image


def selector_labels(dep_id: str) -> dict[str, str]:
    return {LABEL_DEPLOYMENT: dep_id}


def object_labels(dep_id: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": dep_id,
        "app.kubernetes.io/instance": dep_id,
        "app.kubernetes.io/component": "model",
        "app.kubernetes.io/part-of": "mlgate",
        **MANAGED_BY,
        **selector_labels(dep_id),
    }


def spec_hash(obj: Manifest) -> str:
    """A digest of everything mlgate applies in ``obj`` (the hash annotation excluded)."""
    meta = obj.get("metadata", {})
    annotations = {k: v for k, v in meta.get("annotations", {}).items() if k != ANNOTATION_HASH}
    body = {**obj, "metadata": {**meta, "annotations": annotations}}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()[:16]


def observed_hash(obj: Manifest) -> str | None:
    return (obj.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_HASH)


def render(dep: ModelDeployment, settings: KubernetesSettings,
           owner_uid: str | None = None) -> list[Manifest]:
    """Every object for ``dep``, hash-annotated, children owned by the Deployment when known."""
    spec = dep.spec
    objects = [deployment(dep, settings), service(dep, settings)]
    if spec.min_replicas == 0 and settings.keda:
        objects.append(scaled_object(dep, settings))
    else:
        objects.append(autoscaler(dep, settings))
    if spec.min_replicas >= 2:
        objects.append(disruption_budget(dep, settings))
    if owner_uid:
        for obj in objects[1:]:
            obj["metadata"]["ownerReferences"] = [{
                "apiVersion": DEPLOYMENT[0], "kind": DEPLOYMENT[1], "name": dep.id,
                "uid": owner_uid, "controller": True}]
    for obj in objects:
        obj["metadata"]["annotations"][ANNOTATION_HASH] = spec_hash(obj)
    return objects


def _metadata(dep: ModelDeployment, settings: KubernetesSettings) -> Manifest:
    return {"name": dep.id, "namespace": settings.namespace, "labels": object_labels(dep.id),
            "annotations": {}}


def _resources(dep: ModelDeployment) -> Manifest:
    res = dep.spec.resources
    requests = {k: v for k, v in res.requests.to_dict().items() if k != "gpu"}
    limits = {k: v for k, v in res.limits.to_dict().items() if k != "gpu"}
    gpu = res.limits.gpu or res.requests.gpu
    if gpu is not None and gpu not in ("0", "0.0"):
        limits[GPU_RESOURCE] = gpu  # extended resources: the request defaults to the limit
    out: Manifest = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _probe(path: str, port: int, delay: int, period: int) -> Manifest:
    return {"httpGet": {"path": path, "port": port}, "initialDelaySeconds": delay,
            "periodSeconds": period, "timeoutSeconds": 2, "failureThreshold": 3}


def predictor_container(dep: ModelDeployment, settings: KubernetesSettings) -> Manifest:
    ports = PREDICTORS[dep.spec.predictor]
    port_name = "predictor" if settings.sidecar else SERVING_PORT_NAME
    return {
        "name": PREDICTOR_CONTAINER,
        "image": container_image(dep.spec.image),
        "imagePullPolicy": settings.image_pull_policy,
        "ports": [{"name": port_name, "containerPort": ports.port, "protocol": "TCP"}],
        "resources": _resources(dep),
        "livenessProbe": _probe(ports.liveness_path, ports.port,
                                dep.spec.liveness_probe_initial_delay, 10),
        "readinessProbe": _probe(ports.readiness_path, ports.port,
                                 dep.spec.readiness_probe_initial_delay, 5),
    }


def sidecar_container(dep: ModelDeployment, settings: KubernetesSettings) -> Manifest:
    """The mlgate gateway in the pod, in front of the predictor on localhost."""
    ports = PREDICTORS[dep.spec.predictor]
    args = ["sidecar", "--upstream", f"127.0.0.1:{ports.port}", "--port",
            str(settings.sidecar_port), "--deployment-id", dep.id,
            "--predictor", dep.spec.predictor, "--data-dir", SIDECAR_DATA_DIR]
    if not settings.sidecar_records:
        args.append("--no-records")
    return {
        "name": SIDECAR_CONTAINER,
        "image": settings.sidecar_image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": args,
        "ports": [{"name": SERVING_PORT_NAME, "containerPort": settings.sidecar_port,
                   "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                      "limits": {"cpu": "500m", "memory": "256Mi"}},
        "readinessProbe": _probe("/health", settings.sidecar_port, 0, 5),
        "volumeMounts": [{"name": SIDECAR_VOLUME, "mountPath": SIDECAR_DATA_DIR}],
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True},
    }


def deployment(dep: ModelDeployment, settings: KubernetesSettings) -> Manifest:
    containers = [predictor_container(dep, settings)]
    pod_spec: Manifest = {
        "containers": containers,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 30,
    }
    if settings.sidecar:
        containers.append(sidecar_container(dep, settings))
        pod_spec["volumes"] = [{"name": SIDECAR_VOLUME, "emptyDir": {}}]
    if dep.spec.image_pull_conn_id:
        pod_spec["imagePullSecrets"] = [{"name": dep.spec.image_pull_conn_id}]
    if dep.spec.node_selector:
        pod_spec["nodeSelector"] = dict(dep.spec.node_selector)
    pod_annotations = {**dep.spec.annotations, ANNOTATION_PREDICTOR: dep.spec.predictor}
    return {
        "apiVersion": DEPLOYMENT[0],
        "kind": DEPLOYMENT[1],
        "metadata": _metadata(dep, settings),
        "spec": {
            "selector": {"matchLabels": selector_labels(dep.id)},
            "revisionHistoryLimit": 3,
            "progressDeadlineSeconds": 600,
            # Never fewer ready pods than wanted during a rollout: surge one, then swap.
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": object_labels(dep.id), "annotations": pod_annotations},
                "spec": pod_spec,
            },
        },
    }


def service(dep: ModelDeployment, settings: KubernetesSettings) -> Manifest:
    return {
        "apiVersion": SERVICE[0],
        "kind": SERVICE[1],
        "metadata": _metadata(dep, settings),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(dep.id),
            "ports": [{"name": SERVING_PORT_NAME, "port": settings.service_port,
                       "targetPort": SERVING_PORT_NAME, "protocol": "TCP"}],
        },
    }


def _target(dep: ModelDeployment) -> Manifest:
    return {"apiVersion": DEPLOYMENT[0], "kind": DEPLOYMENT[1], "name": dep.id}


def autoscaler(dep: ModelDeployment, settings: KubernetesSettings) -> Manifest:
    """CPU-driven HPA; ``minReplicas: 0`` without KEDA keeps one replica (the HPA's floor)."""
    minimum = max(1, dep.spec.min_replicas)
    return {
        "apiVersion": HPA[0],
        "kind": HPA[1],
        "metadata": _metadata(dep, settings),
        "spec": {
            "scaleTargetRef": _target(dep),
            "minReplicas": minimum,
            "maxReplicas": max(minimum, dep.spec.max_replicas),
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": settings.hpa_cpu_utilization}}}],
        },
    }


def in_flight_query(dep_id: str) -> str:
    return f'sum({IN_FLIGHT_METRIC}{{deployment="{dep_id}"}})'


def scaled_object(dep: ModelDeployment, settings: KubernetesSettings) -> Manifest:
    """KEDA scales 0 <-> N on requests in flight; the gateway holds a request meanwhile."""
    return {
        "apiVersion": SCALED_OBJECT[0],
        "kind": SCALED_OBJECT[1],
        "metadata": _metadata(dep, settings),
        "spec": {
            "scaleTargetRef": _target(dep),
            "minReplicaCount": 0,
            "maxReplicaCount": dep.spec.max_replicas,
            "pollingInterval": 5,
            "cooldownPeriod": settings.keda_cooldown_period,
            "triggers": [{
                "type": "prometheus",
                "metadata": {
                    "serverAddress": settings.prometheus_url,
                    "query": in_flight_query(dep.id),
                    "threshold": str(settings.keda_in_flight_per_replica),
                    "activationThreshold": "0",
                    "ignoreNullValues": "true",
                },
            }],
        },
    }


def disruption_budget(dep: ModelDeployment, settings: KubernetesSettings) -> Manifest:
    return {
        "apiVersion": PDB[0],
        "kind": PDB[1],
        "metadata": _metadata(dep, settings),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(dep.id)}},
    }


def service_address(dep_id: str, settings: KubernetesSettings) -> tuple[str, int]:
    """Where the edge gateway sends ``/model/<id>/...``: the Service, as one replica."""
    return settings.service_host.format(id=dep_id, namespace=settings.namespace), \
        settings.service_port
