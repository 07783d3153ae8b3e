"""What the control plane tells the gateway's monitoring (``/metrics``, ``/status/``).

The gateway cannot read the store or the runtime; :func:`control_plane_view` gives it
a function it calls at scrape time: each stored deployment's state, the replicas
wanted and ready, and each replica process's CPU and memory where the runtime can
measure them (the local runtime does, with psutil).
"""

from __future__ import annotations

from deploy.control.runtime import Runtime
from deploy.control.store import Store
from gateway import ControlPlaneView, DeploymentState


def control_plane_view(store: Store, runtime: Runtime) -> ControlPlaneView:
    desired_of = getattr(runtime, "desired_replicas", None)
    usage_of = getattr(runtime, "replica_usage", None)

    def view() -> list[DeploymentState]:
        out = []
        for dep in store.list_deployments():
            observed = runtime.observe(dep.id)
            desired = desired_of(dep.id) if desired_of is not None else None
            if desired is None:
                desired = observed.replicas if observed is not None else 0
            out.append(DeploymentState(
                dep.id, dep.status.state, desired,
                observed.available if observed is not None else 0,
                dep.status.reason or "",
                tuple(usage_of(dep.id)) if usage_of is not None else ()))
        return out

    return view
