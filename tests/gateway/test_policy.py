"""Authorization as pure functions: request classification and the policy decision, as tables."""

from __future__ import annotations

import pytest
import yaml

from gateway.auth import (
    DEFAULT_POLICY,
    Access,
    PolicyError,
    Resource,
    classify,
    decide,
    parse_policy,
    roles_from_claims,
)


def dep(name: str) -> Resource:
    return Resource("deployment", name)


def route(name: str) -> Resource:
    return Resource("route", name)


def path(name: str) -> Resource:
    return Resource("path", name)


def job(name: str) -> Resource:
    return Resource("job", name)


CLASSIFY = [
    ("GET", "/health", None, None),
    ("GET", "/metrics", None, None),
    ("GET", "/model/wine/api/model/info", "info", dep("wine")),
    ("HEAD", "/model/wine/api/model/info", "info", dep("wine")),
    ("POST", "/model/wine/api/model/info", "invoke", dep("wine")),
    ("POST", "/model/wine/api/model/invoke", "invoke", dep("wine")),
    ("POST", "/model/wine/invocations", "invoke", dep("wine")),
    ("POST", "/model/wine/v2/models/wine/infer", "invoke", dep("wine")),
    ("GET", "/model/wine", "invoke", dep("wine")),
    ("POST", "/custom/wine/api/model/invoke", "invoke", route("/custom/wine/api/model/invoke")),
    ("POST", "/feedback/model/", "feedback", path("/feedback/model/")),
    ("POST", "/feedback/model", "feedback", path("/feedback/model")),
    ("POST", "/api/v1/feedback", "feedback", path("/api/v1/feedback")),
    ("GET", "/api/v1/model/deployment", "deployment:read", dep("*")),
    ("GET", "/api/v1/model/deployment/wine", "deployment:read", dep("wine")),
    ("GET", "/api/v1/model/deployment/wine/default-route", "deployment:read", dep("wine")),
    ("POST", "/api/v1/model/deployment", "deployment:write", dep("*")),
    ("PUT", "/api/v1/model/deployment", "deployment:write", dep("*")),
    ("DELETE", "/api/v1/model/deployment/wine", "deployment:write", dep("wine")),
    ("GET", "/api/v1/model/route", "route:read", route("*")),
    ("GET", "/api/v1/model/route/ab", "route:read", route("ab")),
    ("DELETE", "/api/v1/model/route/ab", "route:write", route("ab")),
    ("POST", "/api/v1/model/route", "route:write", route("*")),
    ("GET", "/api/v1/batch/job", "job:read", job("*")),
    ("GET", "/api/v1/batch/job/nightly", "job:read", job("nightly")),
    ("POST", "/api/v1/batch/job", "job:write", job("*")),
    ("POST", "/api/v1/batch/job/nightly/resume", "job:write", job("nightly")),
    ("DELETE", "/api/v1/batch/job/nightly", "job:write", job("nightly")),
    ("GET", "/api/v1/model/deployment/wine/quality", "deployment:read", dep("wine")),
    ("GET", "/api/v1/model/route/ab/quality", "route:read", route("ab")),
    ("GET", "/api/v1/dataset", "dataset:read", path("/api/v1/dataset")),
    ("POST", "/api/v1/dataset", "admin", path("/api/v1/dataset")),
    # the pages' static files are open (GET/HEAD only); their data needs a token
    ("GET", "/swagger/index.html", None, None),
    ("HEAD", "/swagger/swagger-ui-bundle.js", None, None),
    ("GET", "/swagger", None, None),
    ("GET", "/service-catalog/", None, None),
    ("GET", "/service-catalog/catalog.js", None, None),
    ("GET", "/status/", None, None),
    ("GET", "/status/uPlot.iife.min.js", None, None),
    ("POST", "/status/index.html", "read", path("/status/index.html")),
    ("OPTIONS", "/swagger/index.html", "read", path("/swagger/index.html")),
    ("GET", "/swagger/openapi.json", "read", path("/swagger/openapi.json")),
    ("GET", "/swagger/other.html", "read", path("/swagger/other.html")),
    ("GET", "/service-catalog/api/models", "read", path("/service-catalog/api/models")),
    ("GET", "/service-catalog/api/models/wine", "info", dep("wine")),
    ("HEAD", "/service-catalog/api/models/wine", "info", dep("wine")),
    ("GET", "/service-catalog/api/models/wine/x", "read",
     path("/service-catalog/api/models/wine/x")),
    ("POST", "/service-catalog/api/models/wine", "read", path("/service-catalog/api/models/wine")),
    ("GET", "/service-catalog/models", "read", path("/service-catalog/models")),
    ("GET", "/status/api/summary", "read", path("/status/api/summary")),
    ("GET", "/status/index.html/", "read", path("/status/index.html/")),
    ("GET", "/openapi.json", "read", path("/openapi.json")),
    ("GET", "/api/v1/model/deploymentx", "admin", path("/api/v1/model/deploymentx")),
    ("GET", "/modelx/wine", "admin", path("/modelx/wine")),
    ("GET", "/model/", "admin", path("/model/")),
    ("GET", "/healthz", "admin", path("/healthz")),
    ("GET", "/", "admin", path("/")),
]


@pytest.mark.parametrize(("method", "url", "action", "resource"), CLASSIFY,
                         ids=[f"{m} {p}" for m, p, *_ in CLASSIFY])
def test_classify(method, url, action, resource):
    target = classify(method, url)
    if action is None:
        assert target.open
        return
    assert target.access == Access(action, resource)
    assert target.unclassified == (action == "admin")
    assert target.id_from_body == (action.endswith(":write") and resource.name == "*")


def test_custom_routes_use_the_route_id_a_routing_step_resolved():
    assert classify("POST", "/custom/ab/api/model/invoke", "ab-test").access == Access(
        "invoke", route("ab-test"))


ADMIN, SCIENTIST, VIEWER = frozenset({"admin"}), frozenset({"data_scientist"}), frozenset(
    {"viewer"})
NONE = frozenset()
ODAHU_SCIENTIST = frozenset({"odahu_data_scientist", "offline_access"})

DECISIONS = [
    # roles, action, resource, resource roles, allowed
    (ADMIN, "invoke", dep("wine"), NONE, True),
    (ADMIN, "deployment:write", dep("*"), NONE, True),
    (ADMIN, "route:write", route("ab"), NONE, True),
    (ADMIN, "admin", path("/anything"), NONE, True),
    (SCIENTIST, "invoke", dep("wine"), NONE, True),
    (SCIENTIST, "info", dep("wine"), NONE, True),
    (SCIENTIST, "feedback", path("/feedback/model/"), NONE, True),
    (SCIENTIST, "deployment:write", dep("wine"), NONE, True),
    (SCIENTIST, "deployment:read", dep("*"), NONE, True),
    (SCIENTIST, "route:read", route("ab"), NONE, True),
    (SCIENTIST, "route:write", route("ab"), NONE, False),
    (SCIENTIST, "job:write", job("nightly"), NONE, True),
    (VIEWER, "job:read", job("nightly"), NONE, True),
    (VIEWER, "job:write", job("*"), NONE, False),
    (SCIENTIST, "read", path("/swagger/index.html"), NONE, True),
    (SCIENTIST, "admin", path("/debug"), NONE, False),
    (SCIENTIST, "dataset:read", path("/api/v1/dataset"), NONE, True),
    (VIEWER, "dataset:read", path("/api/v1/dataset"), NONE, False),
    (ODAHU_SCIENTIST, "invoke", dep("wine"), NONE, True),
    (VIEWER, "info", dep("wine"), NONE, True),
    (VIEWER, "deployment:read", dep("wine"), NONE, True),
    (VIEWER, "route:read", route("*"), NONE, True),
    (VIEWER, "read", path("/openapi.json"), NONE, True),
    (VIEWER, "invoke", dep("wine"), NONE, False),
    (VIEWER, "feedback", path("/api/v1/feedback"), NONE, False),
    (VIEWER, "deployment:write", dep("wine"), NONE, False),
    (NONE, "info", dep("wine"), NONE, False),
    (frozenset({"role-wine"}), "invoke", dep("wine"), frozenset({"role-wine"}), True),
    (frozenset({"role-wine"}), "info", dep("wine"), frozenset({"role-wine"}), True),
    (frozenset({"role-wine"}), "invoke", dep("beer"), frozenset({"role-beer"}), False),
    (frozenset({"role-wine"}), "deployment:write", dep("wine"), frozenset({"role-wine"}), False),
    (frozenset({"role-wine"}), "feedback", path("/feedback/model/"), NONE, False),
    (frozenset({"Admin"}), "invoke", dep("wine"), NONE, False),
]


@pytest.mark.parametrize(("roles", "action", "resource", "resource_roles", "allowed"), DECISIONS,
                         ids=[f"{sorted(r)}-{a}-{res.name}" for r, a, res, _, _ in DECISIONS])
def test_default_policy(roles, action, resource, resource_roles, allowed):
    decision = decide(roles, Access(action, resource), DEFAULT_POLICY, resource_roles)
    assert decision.allowed is allowed
    if not allowed:
        assert action in decision.reason and resource.name in decision.reason


def test_denial_without_roles_says_so():
    decision = decide(NONE, Access("invoke", dep("wine")), DEFAULT_POLICY)
    assert decision.reason == "the token carries no roles, so it may not invoke deployment 'wine'"


CUSTOM = """
rules:
  - roles: [team-a]
    actions: [invoke, info]
    resources: ["deployment:wine-*", "route:ab-*"]
  - roles: [auditor]
    actions: ["*:read", read]
  - roles: ["*"]
    actions: [info]
    resources: [public-*]
"""

CUSTOM_DECISIONS = [
    (frozenset({"team-a"}), "invoke", dep("wine-v1"), True),
    (frozenset({"team-a"}), "invoke", route("ab-test"), True),
    (frozenset({"team-a"}), "invoke", dep("beer-v1"), False),
    (frozenset({"team-a"}), "invoke", route("wine-v1"), False),
    (frozenset({"team-a"}), "deployment:write", dep("wine-v1"), False),
    (frozenset({"auditor"}), "deployment:read", dep("x"), True),
    (frozenset({"auditor"}), "route:read", route("x"), True),
    (frozenset({"auditor"}), "route:write", route("x"), False),
    (frozenset({"anyone"}), "info", dep("public-model"), True),
    (NONE, "info", dep("public-model"), True),
    (frozenset({"anyone"}), "invoke", dep("public-model"), False),
    (frozenset({"admin"}), "invoke", dep("wine-v1"), False),  # a file replaces the defaults
]


@pytest.mark.parametrize(("roles", "action", "resource", "allowed"), CUSTOM_DECISIONS)
def test_policy_file(roles, action, resource, allowed):
    policy = parse_policy(yaml.safe_load(CUSTOM))
    assert decide(roles, Access(action, resource), policy).allowed is allowed


@pytest.mark.parametrize(("doc", "fragment"), [
    ([], "one key, 'rules'"),
    ({"rules": [], "extra": 1}, "one key, 'rules'"),
    ({"rules": ["x"]}, "rule 1: must be a mapping"),
    ({"rules": [{"actions": ["invoke"]}]}, "rule 1: 'roles' is required"),
    ({"rules": [{"roles": [], "actions": ["invoke"]}]}, "non-empty list"),
    ({"rules": [{"roles": ["a"], "actions": ["launch"]}]}, "action 'launch' matches none"),
    ({"rules": [{"roles": ["a"], "actions": ["invoke"], "when": "always"}]}, "unknown key(s) when"),
])
def test_policy_file_errors_name_the_rule(doc, fragment):
    with pytest.raises(PolicyError) as err:
        parse_policy(doc, "policy.yaml")
    assert fragment in str(err.value)


@pytest.mark.parametrize(("claims", "paths", "roles"), [
    ({"realm_access": {"roles": ["admin", "x"]}}, ("realm_access.roles", "roles"), {"admin", "x"}),
    ({"roles": ["viewer"]}, ("realm_access.roles", "roles"), {"viewer"}),
    ({"realm_access": {"roles": ["a"]}, "roles": ["b"]}, ("realm_access.roles", "roles"), {"a"}),
    ({"https://ex.com/roles": ["a"]}, ("https://ex.com/roles",), {"a"}),
    ({"scope": "invoke read"}, ("scope",), {"invoke", "read"}),
    ({"roles": ["a", 7, None]}, ("roles",), {"a"}),
    ({"realm_access": "admin-string"}, ("realm_access.roles",), set()),
    ({}, ("realm_access.roles", "roles"), set()),
])
def test_roles_from_claims(claims, paths, roles):
    assert roles_from_claims(claims, paths) == roles
