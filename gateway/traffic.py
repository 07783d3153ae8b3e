"""Which target of a ModelRoute serves a request: pure decisions, no I/O.

Per request, in this order:

1. **override** — the ``x-mlgate-override-target`` header names a target of the
   route (any weight, 0 included: the way to try a dark canary); only principals
   holding one of the route's override roles may send it;
2. **sticky** — when the route has a sticky key and the request carries it, the
   key's fixed position (:mod:`gateway.sticky`);
3. **random** — a uniform draw.

Both positions are laid on the same line: ``[0, 1)`` cut into the targets'
weights in route order (``a=90, b=10``: a owns ``[0, .9)``, b ``[.9, 1)``). Moving
weight between two neighbours in the list (all a canary needs) moves only the keys
it must: 50/50 -> 60/40 moves exactly the keys in ``[.5, .6)``. A target the
caller marks unusable (not Ready, every replica ejected) gets no new traffic while
another target is usable: a key that lands on it is placed again, by its relative
position inside that target's share, on the usable targets only, so keys of the
healthy targets never move and the key comes back when the target does.

A request that could not connect to its target (it never reached a model) moves
to another target: :func:`failover_target`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from .errors import BadRequest, GatewayError
from .sticky import StickyKey, key_position

OVERRIDE_HEADER = "x-mlgate-override-target"
ROUTE_HEADER = "x-mlgate-route"
TARGET_HEADER = "x-mlgate-target"
DEFAULT_OVERRIDE_ROLES = frozenset({"admin", "odahu_admin"})

OVERRIDE = "override"
STICKY = "sticky"
RANDOM = "random"
FAILOVER = "failover"


class UnknownTarget(BadRequest):
    kind = "unknown_target"


class OverrideForbidden(GatewayError):
    status = 403
    kind = "override_forbidden"


@dataclass(frozen=True, slots=True)
class WeightedTarget:
    deployment_id: str
    weight: int


@dataclass(frozen=True, slots=True)
class TrafficRoute:
    """A ModelRoute as the gateway serves it: immutable, replaced as a whole on change."""

    id: str
    url_prefix: str
    targets: tuple[WeightedTarget, ...]
    mirror: str | None = None
    mirror_percent: float = 100.0
    sticky: StickyKey | None = None
    override_roles: frozenset[str] = DEFAULT_OVERRIDE_ROLES

    def __post_init__(self) -> None:
        if not self.url_prefix.startswith("/") or self.url_prefix.endswith("/"):
            raise ValueError(f"url prefix {self.url_prefix!r} must start and not end with '/'")
        if not self.targets or any(t.weight < 0 for t in self.targets):
            raise ValueError(f"route {self.id!r} needs targets with weights >= 0")
        if sum(t.weight for t in self.targets) <= 0:
            raise ValueError(f"route {self.id!r} has no target with a weight above 0")
        if not 0 <= self.mirror_percent <= 100:
            raise ValueError(f"mirror percent must be 0-100, got {self.mirror_percent}")

    def target_ids(self) -> tuple[str, ...]:
        return tuple(t.deployment_id for t in self.targets)


@dataclass(frozen=True, slots=True)
class Choice:
    target: str
    assignment: str
    """How it was chosen: override, sticky, random, or failover (placed off its first target)."""


def _locate(targets: Sequence[WeightedTarget], u: float) -> tuple[WeightedTarget, float, float]:
    """The target whose share of ``[0, 1)`` covers ``u``, with that share's start and width."""
    total = sum(t.weight for t in targets)
    x = u * total
    acc = 0
    for t in targets:
        if x < acc + t.weight:
            return t, acc / total, t.weight / total
        acc += t.weight
    last = targets[-1]
    return last, (total - last.weight) / total, last.weight / total


def place(targets: Sequence[WeightedTarget], u: float,
          usable: Collection[str]) -> tuple[str, bool]:
    """The target at position ``u`` (weight 0 never), and whether it had to move off an
    unusable one. With no usable target at all, the unusable one it lands on."""
    live = [t for t in targets if t.weight > 0]
    target, start, width = _locate(live, u)
    if target.deployment_id in usable:
        return target.deployment_id, False
    healthy = [t for t in live if t.deployment_id in usable]
    if not healthy:
        return target.deployment_id, False
    inner = min(max((u - start) / width, 0.0), 0.9999999999999999)
    return _locate(healthy, inner)[0].deployment_id, True


def choose_target(route: TrafficRoute, *, override: str | None, may_override: bool,
                  key: str | None, draw: float, usable: Collection[str]) -> Choice:
    """The target for one request. ``key``: its sticky key (None: none or not sticky);
    ``draw``: uniform in ``[0, 1)``; ``usable``: deployment ids that may take new traffic."""
    if override is not None:
        if not may_override:
            raise OverrideForbidden(
                f"choosing the target of model route {route.id!r} with {OVERRIDE_HEADER} "
                f"needs one of the roles: {', '.join(sorted(route.override_roles)) or 'none'}")
        if override not in route.target_ids():
            raise UnknownTarget(f"{override!r} is not a target of model route {route.id!r}; "
                                f"targets: {', '.join(route.target_ids())}")
        return Choice(override, OVERRIDE)
    if route.sticky is not None and key is not None:
        target, moved = place(route.targets, key_position(route.id, key), usable)
        return Choice(target, FAILOVER if moved else STICKY)
    target, _ = place(route.targets, draw, usable)
    return Choice(target, RANDOM)


def failover_target(route: TrafficRoute, tried: Collection[str], usable: Collection[str],
                    draw: float) -> str | None:
    """Another target with weight, untried and usable, picked by weight; None if none is."""
    rest = [t for t in route.targets
            if t.weight > 0 and t.deployment_id not in tried and t.deployment_id in usable]
    if not rest:
        return None
    return _locate(rest, draw)[0].deployment_id


def should_mirror(percent: float, draw: float) -> bool:
    """Copy this request to the mirror? ``percent`` of requests are (``draw`` uniform in [0, 1))."""
    return draw * 100.0 < percent
