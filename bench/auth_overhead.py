"""What authentication and authorization add per request, in process (no sockets).

    .venv/bin/python bench/auth_overhead.py

Prints microseconds per call for: a cached token (Authorization header parsed, LRU
hit, exp checked), classification + policy decision as the authz filter runs them
(memoised) and uncached, and a full RS256 verification (a token seen for the first
time).
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from pathlib import Path

from multidict import CIMultiDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gateway.auth import (
    DEFAULT_POLICY,
    Authenticator,
    ClaimRules,
    StaticKeys,
    classify,
    decide,
    keys_from_jwks,
)
from gateway.auth.filters import bearer_token
from tests.gateway.auth_attacks import AUDIENCE, ISSUER, Issuer

PATH = "/model/wine-v1/api/model/invoke"


def per_call(n: int, fn) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


async def main() -> None:
    issuer = Issuer()
    auth = Authenticator(StaticKeys(keys_from_jwks(issuer.jwks())),
                         ClaimRules(issuer=ISSUER, audiences=frozenset({AUDIENCE})),
                         ("realm_access.roles", "roles"))
    token = issuer.token()
    headers = CIMultiDict({"Authorization": f"Bearer {token}"})
    principal = await auth.authenticate(token)
    n = 100_000
    t0 = time.perf_counter()
    for _ in range(n):
        await auth.authenticate(bearer_token(headers))
    hit = (time.perf_counter() - t0) / n * 1e6

    role_names = frozenset({"role-wine-v1"})
    classify_cached = functools.lru_cache(4096)(classify)
    decide_cached = functools.lru_cache(4096)(
        lambda roles, access, rr: decide(roles, access, DEFAULT_POLICY, rr))
    memo = per_call(n, lambda: decide_cached(
        principal.roles, classify_cached("POST", PATH).access, role_names))
    plain = per_call(n, lambda: decide(
        principal.roles, classify("POST", PATH).access, DEFAULT_POLICY, role_names))

    m = 2000
    t0 = time.perf_counter()
    for _ in range(m):
        auth.cache.clear()
        await auth.authenticate(token)
    miss = (time.perf_counter() - t0) / m * 1e6
    print(f"authn, cached token:            {hit:6.2f} us")
    print(f"authz, memoised (as in filter): {memo:6.2f} us")
    print(f"authz, uncached:                {plain:6.2f} us")
    print(f"authn, first sight (RS256):     {miss:6.1f} us")


if __name__ == "__main__":
    asyncio.run(main())
