"""Rate limits: token buckets per route or deployment and per caller, answered 429.

A :class:`RateRule` names what it covers (deployment and route id globs, or one
deployment's own ``mlgate.io/rate-limit`` annotations), whose bucket a request takes
from (``key``: the token's ``sub``, a claim, the client address, or ``all`` callers
together) and the bucket: ``rate`` tokens a second, ``burst`` at most. Every target
matched has its own buckets. A request covered by several rules needs a token from each.

Answers (the IETF draft ``draft-ietf-httpapi-ratelimit-headers``, in the form of its
``RateLimit-Limit``/``-Remaining``/``-Reset`` fields): every answer of a covered request
carries ``RateLimit-Limit`` (the bucket size), ``RateLimit-Remaining`` (whole tokens
left), ``RateLimit-Reset`` (seconds until the bucket is full again) of the rule closest
to exhaustion, and ``RateLimit-Policy`` listing every rule as ``<burst>;w=<seconds to
refill>;name="<rule>"``. A refused request gets 429 with ``Retry-After`` (seconds until
a token is back, at least 1) and a JSON body naming the rule.

Buckets live in :mod:`gateway.buckets` (this process's, or shared by every process).
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .buckets import Buckets, Take
from .claims import claim_at
from .errors import GatewayError

KEYS = ("sub", "address", "all")
"""Besides ``claim:<path>`` (a claim of the token, ``a.b`` walks nested objects)."""
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(\d+(?:\.\d+)?)?\s*([smh]?))?\s*$")
_PER = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


class RateLimited(GatewayError):
    """429: a bucket of ``rule`` is empty."""

    status = 429
    kind = "rate_limited"
    refusal = "rate_limited"
    record = False

    def __init__(self, message: str, rule: str, headers: Mapping[str, str]) -> None:
        super().__init__(message, headers=headers)
        self.reason = rule


def parse_rate(text: str | float) -> float:
    """``50``, ``50/s``, ``600/m``, ``1000/h``, ``5/10s`` -> tokens per second."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        rate = float(text)
    else:
        m = _RATE.match(str(text))
        if not m:
            raise ValueError(f"not a rate: {text!r} (use e.g. 50, 50/s, 600/m)")
        per = float(m.group(2) or 1) * _PER[m.group(3) or ""]
        rate = float(m.group(1)) / per
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"a rate must be > 0, got {text!r}")
    return rate


@dataclass(frozen=True, slots=True)
class RateRule:
    name: str
    rate: float
    """Tokens per second."""
    burst: int
    """Bucket size: requests allowed at once after a quiet spell."""
    key: str = "sub"
    deployments: tuple[str, ...] = ()
    """Globs of deployment ids this rule covers (their ``/model/<id>/`` calls and the calls a
    route sends them)."""
    routes: tuple[str, ...] = ()
    """Globs of ModelRoute ids (``/custom/...`` calls, before a target is chosen)."""

    def __post_init__(self) -> None:
        if not self.name or not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", self.name):
            raise ValueError(f"rate limit name {self.name!r}: 1-64 of A-Za-z0-9_.:-")
        if not math.isfinite(self.rate) or self.rate <= 0 or self.burst < 1:
            raise ValueError(f"rate limit {self.name}: rate must be > 0 and burst >= 1")
        if self.key not in KEYS and not (self.key.startswith("claim:") and len(self.key) > 6):
            raise ValueError(f"rate limit {self.name}: key must be sub, claim:<path>, address "
                             f"or all, got {self.key!r}")

    @property
    def interval(self) -> float:
        return 1.0 / self.rate

    @property
    def policy(self) -> str:
        """This rule as an item of ``RateLimit-Policy``."""
        window = self.burst / self.rate
        text = f"{window:.3f}".rstrip("0").rstrip(".")
        return f'{self.burst};w={text};name="{self.name}"'

    def covers(self, kind: str, target: str) -> bool:
        patterns = self.deployments if kind == "deployment" else self.routes
        return any(fnmatch.fnmatchcase(target, p) for p in patterns)


def parse_rules(raw: Sequence[Mapping[str, Any]],
                where: str = "rate_limits") -> tuple[RateRule, ...]:
    """Rules from configuration (``rate_limits.rules``): each a mapping of ``name``, ``rate``,
    ``burst`` (default: one second's worth, at least 1), ``key`` (default ``sub``),
    ``deployments`` and/or ``routes`` (lists of id globs)."""
    rules = []
    names = set()
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{at} must be a mapping")
        unknown = sorted(set(item) - {"name", "rate", "burst", "key", "deployments", "routes"})
        if unknown:
            raise ValueError(f"{at}: unknown key(s) {', '.join(map(str, unknown))}")
        name = str(item.get("name") or f"rule-{i + 1}")
        if name in names:
            raise ValueError(f"{at}: another rule is named {name!r}")
        names.add(name)
        try:
            rate = parse_rate(item["rate"])
        except KeyError:
            raise ValueError(f"{at}: rate is required") from None
        except ValueError as exc:
            raise ValueError(f"{at}: {exc}") from None
        burst = item.get("burst")
        globs = {k: _globs(item.get(k), f"{at}.{k}") for k in ("deployments", "routes")}
        if not globs["deployments"] and not globs["routes"]:
            raise ValueError(f"{at}: name the deployments and/or routes it covers "
                             "(globs; [\"*\"] for all)")
        try:
            rules.append(RateRule(name, rate, _burst(burst, rate), str(item.get("key", "sub")),
                                  **globs))
        except ValueError as exc:
            raise ValueError(f"{at}: {exc}") from None
    return tuple(rules)


def _burst(value: Any, rate: float) -> int:
    if value is None:
        return max(1, math.ceil(rate))
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"burst must be a whole number, got {value!r}")
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"burst must be a whole number, got {value!r}") from None


def _globs(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{where} must be a list of id globs")
    return tuple(value)


def caller_key(rule: RateRule, claims: Mapping[str, Any] | None, address: str | None) -> str:
    """Whose bucket: a request without the token or claim the rule keys on is keyed by its
    address (so callers without one do not share a single bucket)."""
    if rule.key == "all":
        return "*"
    if rule.key == "sub":
        sub = claims.get("sub") if claims else None
        if isinstance(sub, str) and sub:
            return "sub:" + sub
    elif rule.key.startswith("claim:"):
        value = claim_at(claims, rule.key[6:]) if claims else None
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return f"claim:{value}"
    return "addr:" + (address or "?")


@dataclass(frozen=True, slots=True)
class Verdict:
    rule: RateRule
    take: Take


def headers_for(verdicts: Sequence[Verdict]) -> dict[str, str]:
    """The ``RateLimit-*`` fields (and ``Retry-After`` when refused) for these checks."""
    refused = [v for v in verdicts if not v.take.allowed]
    tightest = min(verdicts, key=lambda v: (v.take.allowed, v.take.remaining,
                                            -v.take.reset))
    out = {
        "RateLimit-Limit": str(tightest.rule.burst),
        "RateLimit-Remaining": str(tightest.take.remaining),
        "RateLimit-Reset": str(max(0, math.ceil(tightest.take.reset))),
        "RateLimit-Policy": ", ".join(v.rule.policy for v in verdicts),
    }
    if refused:
        out["Retry-After"] = str(max(1, math.ceil(max(v.take.retry_after for v in refused))))
    return out


class RateLimiter:
    """The configured rules over a bucket store; :meth:`check` is called on the request path."""

    def __init__(self, rules: Iterable[RateRule], buckets: Buckets) -> None:
        self.rules = tuple(rules)
        self.buckets = buckets

    def rules_for(self, kind: str, target: str,
                  own: Sequence[RateRule] = ()) -> list[RateRule]:
        return [r for r in self.rules if r.covers(kind, target)] + list(own)

    def check(self, kind: str, target: str, claims: Mapping[str, Any] | None,
              address: str | None, own: Sequence[RateRule] = (),
              previous: Sequence[Verdict] = ()) -> list[Verdict]:
        """Take a token from every bucket this request falls in for ``kind`` ``target``; the
        checks so far (``previous`` and these), from which :func:`headers_for` makes the
        answer's fields. Raises :class:`RateLimited` when a bucket is empty (tokens taken
        from the others stay taken: a refused request still counts)."""
        rules = self.rules_for(kind, target, own) if self.rules else list(own)
        verdicts = list(previous)
        if not rules:
            return verdicts
        refused = None
        for rule in rules:
            key = f"{rule.name}\0{kind}:{target}\0{caller_key(rule, claims, address)}"
            verdict = Verdict(rule, self.buckets.take(key.encode(), rule.interval, rule.burst))
            verdicts.append(verdict)
            if refused is None and not verdict.take.allowed:
                refused = verdict
        if refused is not None:
            headers = headers_for(verdicts)
            raise RateLimited(f"rate limit {refused.rule.name!r} of {kind} {target!r} exceeded: "
                              f"{refused.rule.burst} requests, refilled at "
                              f"{refused.rule.rate:g}/s; retry after "
                              f"{headers['Retry-After']}s", refused.rule.name, headers)
        return verdicts
