"""A ModelDeployment's state from what the cluster reports — pure functions.

Input: the model's ``Deployment`` (its status and conditions), its pods (container
statuses) and the Warning events about those pods. Output: ``ClusterState`` with the
ODAHU state and the reason a person needs:

- ``Failed``: a container cannot start (``ImagePullBackOff``, ``ErrImagePull``,
  ``CrashLoopBackOff``, ...), the rollout exceeded its progress deadline, or the
  Deployment reports ``ReplicaFailure`` (quota, admission);
- ``Ready``: the current spec is rolled out and every wanted replica is available
  (a deployment scaled to zero is Ready with 0 replicas);
- ``Deleting``: the Deployment is being deleted;
- ``Processing`` otherwise, with the latest warning (``FailedScheduling: 0/3 nodes ...``)
  or the Deployment's progress message as the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from deploy.control.deployments import STATE_DELETING, STATE_FAILED, STATE_PROCESSING, STATE_READY

Obj = Mapping[str, Any]

FAILING_WAIT_REASONS = frozenset({
    "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
    "CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError",
    "RunContainerError",
})


@dataclass(frozen=True, slots=True)
class ClusterState:
    state: str
    replicas: int = 0
    available_replicas: int = 0
    reason: str = ""


def conditions(obj: Obj) -> dict[str, Obj]:
    return {c.get("type", ""): c for c in (obj.get("status") or {}).get("conditions") or []}


def pod_failure(pod: Obj) -> str | None:
    """Why a pod's container cannot run, or None."""
    status = pod.get("status") or {}
    name = (pod.get("metadata") or {}).get("name", "?")
    for cs in [*(status.get("initContainerStatuses") or []),
               *(status.get("containerStatuses") or [])]:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in FAILING_WAIT_REASONS:
            message = waiting.get("message") or ""
            detail = f": {message}" if message else ""
            return f"pod {name}, container {cs.get('name', '?')}: {reason}{detail}"
    return None


def latest_warning(events: Iterable[Obj]) -> str | None:
    warnings = [e for e in events if e.get("type") == "Warning"]
    if not warnings:
        return None
    last = max(warnings, key=lambda e: (e.get("lastTimestamp") or e.get("eventTime") or "",
                                        (e.get("metadata") or {}).get("resourceVersion", "")))
    return f"{last.get('reason', 'Warning')}: {last.get('message', '')}".rstrip(": ")


def rolled_out(deployment: Obj) -> bool:
    """The current spec is observed, every wanted replica updated and available."""
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    wanted = spec.get("replicas", 1)
    return (status.get("observedGeneration", 0) >= meta.get("generation", 1)
            and status.get("updatedReplicas", 0) >= wanted
            and status.get("availableReplicas", 0) >= wanted
            and status.get("replicas", 0) <= wanted)


def derive_status(deployment: Obj | None, pods: Iterable[Obj] = (),
                  events: Iterable[Obj] = ()) -> ClusterState:
    if deployment is None:
        return ClusterState(STATE_PROCESSING, reason="waiting for the Deployment to be created")
    status = deployment.get("status") or {}
    replicas = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if (deployment.get("metadata") or {}).get("deletionTimestamp"):
        return ClusterState(STATE_DELETING, replicas, available)
    conds = conditions(deployment)
    progressing = conds.get("Progressing", {})
    if progressing.get("status") == "False" and \
            progressing.get("reason") == "ProgressDeadlineExceeded":
        return ClusterState(STATE_FAILED, replicas, available,
                        f"ProgressDeadlineExceeded: {progressing.get('message', '')}".rstrip(": "))
    replica_failure = conds.get("ReplicaFailure", {})
    if replica_failure.get("status") == "True":
        return ClusterState(STATE_FAILED, replicas, available,
                        f"{replica_failure.get('reason', 'ReplicaFailure')}: "
                        f"{replica_failure.get('message', '')}".rstrip(": "))
    pods = sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name", ""))
    for pod in pods:
        failure = pod_failure(pod)
        if failure:
            return ClusterState(STATE_FAILED, replicas, available, failure)
    if conds.get("Available", {}).get("status") == "True" and rolled_out(deployment):
        return ClusterState(STATE_READY, replicas, available)
    reason = latest_warning(events) or progressing.get("message") or "rolling out"
    return ClusterState(STATE_PROCESSING, replicas, available, reason)


def current_available(deployment: Obj | None, since_generation: int) -> int:
    """Available pods that run the pod template mlgate applied at ``since_generation``
    (the Deployment's ``metadata.generation`` then) or a later one.

    0 while the Deployment controller has not yet observed that generation. During a
    rollout ``status.availableReplicas`` counts old pods too; the old ones
    (``replicas - updatedReplicas``) are assumed available first, so the answer never
    overstates. An HPA or KEDA scale (a later generation, same template) keeps it exact.
    """
    if deployment is None or observed_generation(deployment) < since_generation:
        return 0
    status = deployment.get("status") or {}
    replicas = int(status.get("replicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    return max(0, available - max(0, replicas - updated))


def observed_generation(deployment: Obj | None) -> int:
    """The ``metadata.generation`` the Deployment controller has acted on (0: none)."""
    if deployment is None:
        return 0
    return int((deployment.get("status") or {}).get("observedGeneration") or 0)
