"""Who may do what: a policy of allow rules, and the pure decision over it.

A rule names roles, actions and resources (all lists; ``*`` and shell globs work):

    - roles: [data_scientist]
      actions: [invoke, info, feedback]
      resources: ["deployment:wine-*"]     # or "route:...", "path:/swagger/*", or "wine-*"

Actions: ``invoke``, ``info``, ``feedback``, ``read`` (Swagger, catalog, status, the
OpenAPI document), ``deployment:read`` (also a deployment's live quality),
``deployment:write``, ``route:read``, ``route:write``, ``records:read`` (stored requests,
answers and feedback), ``dataset:read`` (training data sets: the logged inputs, predictions
and labels), ``job:read``, ``job:write`` (inference jobs; a job's model calls are then
authorized as ``invoke`` with its submitter's roles), ``token:read``, ``token:write``
(token revocations), and ``admin`` (any other route the gateway serves; only a rule
naming it or ``*`` grants it). Anything not allowed by some
rule is denied.

The built-in rules mirror ODAHU's OPA policies (``odahu-flow`` ``permissions.rego``,
``core.rego``), including its Keycloak role names ``odahu_admin`` etc. A
deployment's ``roleName`` is one more role that may invoke it (and read its info,
which a caller needs in order to invoke), as ODAHU's per-deployment "raw role" rule.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..claims import claim_at

ACTIONS = ("invoke", "info", "feedback", "read", "deployment:read", "deployment:write",
           "route:read", "route:write", "records:read", "dataset:read", "job:read", "job:write",
           "token:read", "token:write", "admin")
RESOURCE_KINDS = ("deployment", "route", "job", "path")
ROLE_NAME_ACTIONS = frozenset({"invoke", "info"})
DEFAULT_ROLES_CLAIM = ("realm_access.roles", "roles")


class PolicyError(ValueError):
    """The policy file is invalid; the message names the rule and key."""


@dataclass(frozen=True, slots=True)
class Resource:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r}"


@dataclass(frozen=True, slots=True)
class Access:
    """What a request wants to do: ``action`` on ``resource``."""

    action: str
    resource: Resource


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str


def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(pattern))


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str]
    actions: tuple[str, ...]
    resources: tuple[str, ...] = ("*",)
    _actions: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)
    _resources: tuple[tuple[str | None, re.Pattern[str]], ...] = field(
        init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_actions", tuple(_glob(a) for a in self.actions))
        parsed = []
        for pattern in self.resources:
            kind, sep, name = pattern.partition(":")
            if sep and kind in RESOURCE_KINDS:
                parsed.append((kind, _glob(name)))
            else:
                parsed.append((None, _glob(pattern)))
        object.__setattr__(self, "_resources", tuple(parsed))

    def grants(self, roles: frozenset[str], access: Access) -> bool:
        if "*" not in self.roles and self.roles.isdisjoint(roles):
            return False
        if not any(p.match(access.action) for p in self._actions):
            return False
        res = access.resource
        return any((kind is None or kind == res.kind) and p.match(res.name)
                   for kind, p in self._resources)


@dataclass(frozen=True)
class Policy:
    rules: tuple[Rule, ...]


def _rule(roles: Iterable[str], actions: Iterable[str], resources: Iterable[str] = ("*",)) -> Rule:
    return Rule(frozenset(roles), tuple(actions), tuple(resources))


DEFAULT_POLICY = Policy((
    _rule(["admin", "odahu_admin"], ["*"]),
    _rule(["data_scientist", "odahu_data_scientist"],
          ["invoke", "info", "feedback", "read", "deployment:read", "deployment:write",
           "route:read", "records:read", "dataset:read", "job:read", "job:write"]),
    _rule(["viewer", "odahu_viewer"], ["info", "read", "deployment:read", "route:read",
                                       "job:read"]),
))


def decide(roles: frozenset[str], access: Access, policy: Policy,
           resource_roles: frozenset[str] = frozenset()) -> Decision:
    """Allow or deny ``access`` for a principal holding ``roles``.

    ``resource_roles`` are roles attached to the resource itself (a deployment's
    ``roleName``); they grant ``invoke`` and ``info``.
    """
    for rule in policy.rules:
        if rule.grants(roles, access):
            return Decision(True, "allowed by policy")
    if access.action in ROLE_NAME_ACTIONS and not resource_roles.isdisjoint(roles):
        return Decision(True, "allowed by the deployment's roleName")
    if not roles:
        return Decision(False, f"the token carries no roles, so it may not {access.action} "
                               f"{access.resource}")
    return Decision(False, f"role(s) {', '.join(sorted(roles))} may not {access.action} "
                           f"{access.resource}")


def roles_from_claims(claims: Mapping[str, Any], paths: Sequence[str]) -> frozenset[str]:
    """Roles found at the first claim path present (``a.b.c`` walks nested objects).

    A path that is itself a top-level claim name (Auth0's namespaced
    ``https://example.com/roles``) is read as is. A string value counts as one
    role, or several when space-separated (the OAuth ``scope`` style).
    """
    for path in paths:
        value = claim_at(claims, path)
        if value is None:
            continue
        if isinstance(value, str):
            return frozenset(value.split())
        if isinstance(value, list):
            return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


def _str_list(raw: Any, where: str, key: str, default: Sequence[str] | None = None) -> list[str]:
    value = raw.get(key, default)
    if value is None:
        raise PolicyError(f"{where}: '{key}' is required")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(
            isinstance(v, str) and v for v in value):
        raise PolicyError(f"{where}: '{key}' must be a non-empty list of strings")
    return value


def parse_policy(doc: Any, source: str = "policy") -> Policy:
    """A policy from its YAML/JSON form: ``{"rules": [{roles, actions, resources?}, ...]}``."""
    if not isinstance(doc, Mapping) or set(doc) != {"rules"} or not isinstance(
            doc["rules"], list):
        raise PolicyError(f"{source}: must be a mapping with one key, 'rules', a list of rules")
    rules = []
    for i, raw in enumerate(doc["rules"]):
        where = f"{source}: rule {i + 1}"
        if not isinstance(raw, Mapping):
            raise PolicyError(f"{where}: must be a mapping")
        unknown = sorted(set(raw) - {"roles", "actions", "resources"})
        if unknown:
            raise PolicyError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
        roles = _str_list(raw, where, "roles")
        actions = _str_list(raw, where, "actions")
        for action in actions:
            if not any(fnmatch.fnmatchcase(known, action) for known in ACTIONS):
                raise PolicyError(f"{where}: action {action!r} matches none of "
                                  f"{', '.join(ACTIONS)}")
        resources = _str_list(raw, where, "resources", ["*"])
        rules.append(_rule(roles, actions, resources))
    return Policy(tuple(rules))
