"""Which action on which resource a request is, from its method and path alone.

Pure, and independent of who registers the routes, so the rules cover paths
before their handlers exist. A path no rule knows is ``unclassified``: it is
authenticated, then left to routing (404); if some handler does serve it, only
a principal granted the ``admin`` action may reach it — a new route is closed
until it is classified here.

Open (no token): ``/health``, ``/metrics``, and ``GET``/``HEAD`` of the browser pages'
static files listed in ``PAGE_ASSETS`` — the same HTML, JavaScript and CSS for
everyone, no data (a browser cannot send a bearer token when it loads a page; the
page asks for a token and sends it on every data request). Every document and data
endpoint under those prefixes stays authenticated.
"""

from __future__ import annotations

from dataclasses import dataclass

from .policy import Access, Resource

OPEN_PATHS = frozenset({"/health", "/metrics"})
READ_PREFIXES = ("/swagger", "/service-catalog", "/status", "/openapi.json")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ASSET_METHODS = frozenset({"GET", "HEAD"})
PAGE_ASSETS: dict[str, tuple[str, ...]] = {
    "/swagger/": ("", "index.html", "index.css", "swagger-ui.css", "swagger-ui-bundle.js",
                  "swagger-ui-standalone-preset.js", "swagger-initializer.js", "mlgate-token.js",
                  "favicon-16x16.png", "favicon-32x32.png", "oauth2-redirect.html",
                  "oauth2-redirect.js"),
    "/service-catalog/": ("", "index.html", "catalog.js", "catalog.css", "mlgate-token.js",
                          "swagger-ui-bundle.js", "swagger-ui.css"),
    "/status/": ("", "index.html", "status.js", "status.css", "quality.js", "rollout.js",
                 "mlgate-token.js", "uPlot.iife.min.js", "uPlot.min.css"),
}
"""Each page's static files (``""``: the page itself). Exact names; nothing else is open."""
OPEN_ASSETS = frozenset({prefix + name for prefix, names in PAGE_ASSETS.items()
                         for name in names} | {prefix.rstrip("/") for prefix in PAGE_ASSETS})
CATALOG_DOCUMENTS = "/service-catalog/api/models"
RECORDS_PATH = "/api/v1/records"
DATASET_PATH = "/api/v1/dataset"
"""Training data sets (logged inputs, predictions and labels): action ``dataset:read``."""
REVOCATIONS_PATH = "/api/v1/token/revocation"
"""Revoked tokens: actions ``token:read`` (list) and ``token:write`` (revoke, take back)."""


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


def is_open(method: str, path: str) -> bool:
    """No authentication at all: health, metrics, and the pages' static files."""
    return path in OPEN_PATHS or (method in ASSET_METHODS and path in OPEN_ASSETS)


def classify(method: str, path: str, route_id: str | None = None) -> Classified:
    """``route_id``: the ModelRoute a routing step resolved ``/custom/...`` to, if any."""
    if is_open(method, path):
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
    rest = _under(path, "/api/v1/batch/job")
    if rest is not None:
        return _management(method, rest, "job")
    if _under(path, RECORDS_PATH) is not None and method in READ_METHODS:
        return Classified(Access("records:read", Resource("path", path)))
    if _under(path, DATASET_PATH) is not None and method in READ_METHODS:
        return Classified(Access("dataset:read", Resource("path", path)))
    if _under(path, REVOCATIONS_PATH) is not None:
        action = "token:read" if method in READ_METHODS else "token:write"
        return Classified(Access(action, Resource("path", REVOCATIONS_PATH)))
    rest = _under(path, CATALOG_DOCUMENTS)
    if rest and method in READ_METHODS and "/" not in rest[1:]:
        # one deployment's document in the catalog: the same right as /model/<id>/api/model/info
        return Classified(Access("info", Resource("deployment", rest[1:])))
    if any(_under(path, p) is not None for p in READ_PREFIXES):
        return Classified(Access("read", Resource("path", path)))
    return Classified(Access("admin", Resource("path", path)), unclassified=True)
