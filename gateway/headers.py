"""Pure header rules for the proxy: what goes upstream, what comes back."""

from __future__ import annotations

from collections.abc import Mapping

from multidict import CIMultiDict, CIMultiDictProxy

from .errors import NotFound

# RFC 9110 §7.6.1 connection-specific fields, plus those aiohttp recomputes.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
    "upgrade", "proxy-authenticate", "proxy-authorization", "host", "content-length",
})
NOT_FORWARDED_UPSTREAM = HOP_BY_HOP | {"authorization", "cookie"}
NOT_RETURNED = HOP_BY_HOP | {"server", "date", "model-name", "model-version", "request-id"}
UPSTREAM_TIME_HEADER = "x-envoy-upstream-service-time"
# aiohttp's server decodes request bodies sent with these Content-Encodings before any
# handler reads them: what is forwarded is the decoded body, without the header.
SERVER_DECODED = frozenset({"gzip", "deflate", "br", "zstd"})


def decoded_request_encoding(incoming: Mapping[str, str]) -> str | None:
    """The Content-Encoding the server already removed from the request body, if any."""
    if isinstance(incoming, CIMultiDictProxy | CIMultiDict):  # a request's: look it up
        found = incoming.get("Content-Encoding")
    else:
        found = next((v for k, v in incoming.items() if k.lower() == "content-encoding"), None)
    if found is None:
        return None
    value = found.strip().lower()
    return value if value in SERVER_DECODED else None


def upstream_path(raw_path: str, mount: str) -> str:
    """The path (and query) the replica sees.

    ``/model/wine/api/model/invoke?x=1`` under ``/model/wine`` -> ``/api/model/invoke?x=1``.
    """
    if not raw_path.startswith(mount):
        raise NotFound(f"no route for {raw_path}")
    rest = raw_path[len(mount):]
    if not rest or rest[0] == "?":
        return "/" + rest
    if rest[0] != "/":
        raise NotFound(f"no route for {raw_path}")
    return rest


def upstream_headers(incoming: Mapping[str, str], request_id: str, peer: str | None,
                     scheme: str) -> dict[str, str]:
    """Headers sent to the replica: end-to-end ones, minus credentials, plus id and forwarding."""
    out: dict[str, str] = {}
    decoded = decoded_request_encoding(incoming)
    for name, value in incoming.items():
        key = name.lower()
        if key in NOT_FORWARDED_UPSTREAM or (decoded and key == "content-encoding"):
            continue
        out[key] = f"{out[key]}, {value}" if key in out else value
    out["request-id"] = request_id
    forwarded_for = out.get("x-forwarded-for")
    if peer:
        out["x-forwarded-for"] = f"{forwarded_for}, {peer}" if forwarded_for else peer
    out.setdefault("x-forwarded-proto", scheme)
    return out


def response_headers(upstream: Mapping[str, str], request_id: str, model_name: str,
                     model_version: str, upstream_ms: int) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.items():
        if name.lower() not in NOT_RETURNED:
            out.add(name, value)
    out["model-name"] = model_name
    out["model-version"] = model_version
    out["request-id"] = request_id
    out[UPSTREAM_TIME_HEADER] = str(upstream_ms)
    out["server"] = "mlgate"
    return out
