"""One reconcile step as data: (desired objects, observed objects) -> what to apply and delete.

Pure, so a re-run after a crash or a restart decides the same thing: an object is applied
only when it is missing or its ``mlgate.io/spec-hash`` differs from the rendered one, and
an observed object is deleted only when it is one of ours (same name, a managed kind)
that the desired set no longer has — e.g. the HPA after ``minReplicas`` went to 0.
Objects others created next to ours (KEDA's own ``keda-hpa-<id>``) are never touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from deploy.k8s.manifests import MANAGED_KINDS, Manifest, kind_of, observed_hash


@dataclass(frozen=True, slots=True)
class ObjectRef:
    api_version: str
    kind: str
    name: str

    @classmethod
    def of(cls, obj: Manifest) -> ObjectRef:
        return cls(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(slots=True)
class Plan:
    apply: list[Manifest] = field(default_factory=list)
    delete: list[ObjectRef] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.apply and not self.delete


def plan(dep_id: str, desired: Iterable[Manifest], observed: Iterable[Manifest]) -> Plan:
    """What brings ``observed`` to ``desired``; ``observed`` objects need apiVersion and kind."""
    have = {ObjectRef.of(o): o for o in observed}
    out = Plan()
    wanted = set()
    for obj in desired:
        ref = ObjectRef.of(obj)
        wanted.add(ref)
        current = have.get(ref)
        if current is None or observed_hash(current) != observed_hash(obj):
            out.apply.append(obj)
    for ref, obj in have.items():
        if ref not in wanted and ref.name == dep_id and kind_of(obj) in MANAGED_KINDS:
            out.delete.append(ref)
    return out
