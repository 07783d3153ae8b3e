"""The authn and authz filters: thin shells over the authenticator, classifier and policy.

authn: open paths (``/health``, ``/metrics``, the pages' static files) pass; everything else needs
``Authorization: Bearer <JWT>`` that verifies and is not revoked (:mod:`.revocation`), else
401 with ``WWW-Authenticate``; an address that keeps sending invalid tokens gets 429
(:mod:`.abuse`). The principal is left on the request under ``PRINCIPAL_KEY``.

authz: classify the request, decide with the policy, 403 with the reason on deny.
A routing step that resolves ``/custom/...`` to a ModelRoute before this filter
may set ``ROUTE_ID_KEY`` so rules can name the route id instead of the path.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from multidict import MultiMapping

from ..filters import hooks_filter
from ..routing import RouteTable
from .abuse import InvalidTokens
from .authenticator import Authenticator, Principal
from .classify import classify, is_open
from .errors import AuthError, BadAuthRequest, Forbidden
from .policy import Access, Decision, Policy, Resource, decide
from .revocation import Revocations

PRINCIPAL_KEY = web.RequestKey("mlgate_principal", Principal)
ROUTE_ID_KEY = web.RequestKey("mlgate_route_id", str)


def bearer_token(headers: MultiMapping[str]) -> str:
    """The token of the one ``Authorization: Bearer`` header; auth errors otherwise."""
    values = headers.getall("Authorization", ())
    if not values:
        raise AuthError("token_missing", "this endpoint needs an Authorization: Bearer token",
                        error=None)
    if len(values) > 1:
        raise BadAuthRequest("invalid_request", "more than one Authorization header")
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError("token_missing", "the Authorization header must use the Bearer scheme",
                        error=None)
    token = token.strip()
    if not token:
        raise AuthError("token_malformed", "the Bearer token is empty")
    return token


def make_authn_filter(authenticator: Authenticator, revocations: Revocations | None = None,
                      invalid: InvalidTokens | None = None) -> Callable:
    async def verify(request: web.Request, token: str) -> None:
        if invalid is not None:
            invalid.check(request.remote)
        try:
            principal = await authenticator.authenticate(token)
        except AuthError:
            if invalid is not None:
                invalid.failed(request.remote)
            raise
        if revocations is not None:
            revocations.check(principal.claims)
        request[PRINCIPAL_KEY] = principal

    def authn(request: web.Request) -> Awaitable[None] | None:
        if is_open(request.method, request.path):
            return None
        token = bearer_token(request.headers)
        principal = authenticator.cached(token)
        if principal is None:
            return verify(request, token)  # not seen yet: verify (keys may need fetching)
        if revocations is not None:
            revocations.check(principal.claims)
        request[PRINCIPAL_KEY] = principal
        return None

    return hooks_filter(authn, name="authn")


def body_id(body: bytes) -> str | None:
    """The ``id`` of a management write's JSON body, if it has one (the handler validates)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = doc.get("id") if isinstance(doc, dict) else None
    return value if isinstance(value, str) and value else None


DECISION_CACHE_SIZE = 4096


def make_authz_filter(policy: Policy, table: RouteTable) -> Callable:
    """Classification and decisions are pure, so both are memoised (bounded LRU)."""
    classify_cached = functools.lru_cache(maxsize=DECISION_CACHE_SIZE)(classify)

    @functools.lru_cache(maxsize=DECISION_CACHE_SIZE)
    def decide_cached(roles: frozenset[str], access: Access,
                      resource_roles: frozenset[str]) -> Decision:
        return decide(roles, access, policy, resource_roles)

    def resource_roles(access: Access) -> frozenset[str]:
        if access.resource.kind != "deployment":
            return frozenset()
        dep = table.get(access.resource.name)
        return frozenset({dep.role_name}) if dep is not None and dep.role_name else frozenset()

    async def with_body_id(request: web.Request, access: Access,
                           principal: Principal) -> None:
        name = body_id(await request.read())
        if name is not None:
            access = Access(access.action, Resource(access.resource.kind, name))
        check(principal, access)

    def check(principal: Principal, access: Access) -> None:
        decision = decide_cached(principal.roles, access, resource_roles(access))
        if not decision.allowed:
            raise Forbidden(decision.reason)

    def authz(request: web.Request) -> Awaitable[None] | None:
        target = classify_cached(request.method, request.path, request.get(ROUTE_ID_KEY))
        if target.open:
            return None
        principal = request[PRINCIPAL_KEY]
        if target.unclassified and _unrouted(request):
            return None  # nothing serves this path: routing answers 404/405
        access = target.access
        assert access is not None
        if target.id_from_body and request.body_exists:
            return with_body_id(request, access, principal)
        check(principal, access)
        return None

    return hooks_filter(authz, name="authz")


def _unrouted(request: web.Request) -> bool:
    """aiohttp's router found no handler (the fast server only takes routed paths)."""
    match_info = getattr(request, "match_info", None)
    return match_info is not None and match_info.http_exception is not None
