"""Which action on which resource a request is, from its method and path alone.

Pure, and independent of who registers the routes, so the rules cover paths
before their handlers exist. A path no rule knows is ``unclassified``: it is
authenticated, then left to routing (404); if some handler does serve it, only
a principal granted the ``admin`` action may reach it — a new route is closed
until it is classified here.
"""

from __future__ import annotations

from dataclasses import dataclass

from .policy import Access, Resource

OPEN_PATHS = frozenset({"/health", "/metrics"})
READ_PREFIXES = ("/swagger", "/service-catalog", "/status", "/openapi.json")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Classified:
    access: Access | None
    """None for open paths: no authentication, no authorization."""
    unclassified: bool = False
    id_from_body: bool = False
    """A management write without an id in the path: the resource is the body's ``id``."""

    @property
    def open(self) -> bool:
        return self.access is None


OPEN = Classified(None)


def _under(path: str, prefix: str) -> str | None:
    """The rest of ``path`` when it is ``prefix`` or below it ("" or "/..."), else None."""
    if not path.startswith(prefix):
        return None
    rest = path[len(prefix):]
    return rest if rest == "" or rest[0] == "/" else None


def _management(method: str, rest: str, kind: str) -> Classified:
    name = rest[1:].split("/", 1)[0] if rest else ""
    if method in READ_METHODS:
        return Classified(Access(f"{kind}:read", Resource(kind, name or "*")))
    return Classified(Access(f"{kind}:write", Resource(kind, name or "*")),
                      id_from_body=not name)


def classify(method: str, path: str, route_id: str | None = None) -> Classified:
    """``route_id``: the ModelRoute a routing step resolved ``/custom/...`` to, if any."""
    if path in OPEN_PATHS:
        return OPEN
    rest = _under(path, "/model")
    if rest:
        dep_id, _, tail = rest[1:].partition("/")
        if dep_id:
            resource = Resource("deployment", dep_id)
            if tail == "api/model/info" and method in READ_METHODS:
                return Classified(Access("info", resource))
            return Classified(Access("invoke", resource))
    if _under(path, "/custom") is not None:
        return Classified(Access("invoke", Resource("route", route_id or path)))
    if _under(path, "/feedback") is not None or _under(path, "/api/v1/feedback") is not None:
        return Classified(Access("feedback", Resource("path", path)))
    rest = _under(path, "/api/v1/model/deployment")
    if rest is not None:
        return _management(method, rest, "deployment")
    rest = _under(path, "/api/v1/model/route")
    if rest is not None:
        return _management(method, rest, "route")
    if any(_under(path, p) is not None for p in READ_PREFIXES):
        return Classified(Access("read", Resource("path", path)))
    return Classified(Access("admin", Resource("path", path)), unclassified=True)
