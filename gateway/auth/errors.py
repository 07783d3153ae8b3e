"""Authentication and authorization failures, as members of the gateway's error tree.

    GatewayError
    ├── AuthError     401  no credentials, or a token that does not verify
    │                      (``WWW-Authenticate: Bearer`` with RFC 6750 error codes)
    ├── BadAuthRequest 400 the Authorization header itself is unusable (invalid_request)
    └── Forbidden     403  a verified principal the policy does not allow

``kind`` is the machine-readable reason (``token_expired``, ``wrong_audience``, ...) and
becomes the ``reason`` of the JSON body; the message says it in words and never
contains the token.
"""

from __future__ import annotations

import re

from ..errors import GatewayError

REALM = "mlgate"
_NOT_QUOTABLE = re.compile(r'[^\x20\x21\x23-\x5b\x5d-\x7e]')


def _quoted(value: str) -> str:
    """RFC 6750 §3: error_description is limited to printable ASCII without ``"`` and ``\\``."""
    return _NOT_QUOTABLE.sub("?", value)


def bearer_challenge(error: str | None = None, description: str | None = None,
                     scope: str | None = None) -> str:
    parts = [f'realm="{REALM}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{_quoted(description)}"')
    if scope:
        parts.append(f'scope="{_quoted(scope)}"')
    return "Bearer " + ", ".join(parts)


class AuthError(GatewayError):
    """401. ``error`` is the RFC 6750 code; None when the request carried no credentials."""

    status = 401

    def __init__(self, reason: str, message: str, *, error: str | None = "invalid_token") -> None:
        super().__init__(message, headers={
            "WWW-Authenticate": bearer_challenge(error, message if error else None)})
        self.kind = reason
        self.error = error


class BadAuthRequest(GatewayError):
    status = 400

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, headers={
            "WWW-Authenticate": bearer_challenge("invalid_request", message)})
        self.kind = reason


class Forbidden(GatewayError):
    status = 403
    kind = "forbidden"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={
            "WWW-Authenticate": bearer_challenge("insufficient_scope", message)})
