"""The SDK's exceptions: one per kind of failure, each with the server's message and status.

::

    MlgateError                   every error the SDK raises
    ├── ApiError                  the server answered with an error (status, message, body)
    │   ├── Invalid               400: the request is not valid (the message names the fields)
    │   ├── Unauthorized          401: no token, or the token was refused
    │   ├── Forbidden             403: the token's roles may not do this
    │   ├── NotFound              404
    │   ├── Conflict              409: already exists, or being deleted
    │   ├── TooManyRequests       429: a rate limit (after the SDK's retries)
    │   ├── Unavailable           503: no replica, storage full, ... (after the SDK's retries)
    │   └── ServerError           any other 5xx
    ├── ConnectionFailed          mlgate could not be reached (after the SDK's retries)
    ├── DeploymentFailed          ``wait=True`` saw the deployment end ``Failed``
    └── WaitTimeout               ``wait=True`` gave up (also a ``TimeoutError``)

``ApiError.status`` is the HTTP status, ``ApiError.message`` the server's ``message`` field
(or the body's first line), ``ApiError.body`` the decoded JSON body when there is one.
"""

from __future__ import annotations

from typing import Any


class MlgateError(Exception):
    """Base of every error the SDK raises."""


class ApiError(MlgateError):
    """The server answered ``status`` with an error; ``message`` is what it said."""

    status: int = 0

    def __init__(self, message: str, status: int | None = None, body: Any = None,
                 method: str = "", url: str = "") -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.body = body
        self.method = method
        self.url = url

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status})"


class Invalid(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class TooManyRequests(ApiError):
    status = 429


class Unavailable(ApiError):
    status = 503


class ServerError(ApiError):
    status = 500


class ConnectionFailed(MlgateError):
    """mlgate could not be reached at its URL."""


class DeploymentFailed(MlgateError):
    """A deployment waited for ended ``Failed``; ``reason`` is the status's reason."""

    def __init__(self, deployment_id: str, reason: str) -> None:
        super().__init__(f"model deployment {deployment_id} failed: {reason}")
        self.deployment_id = deployment_id
        self.reason = reason


class WaitTimeout(MlgateError, TimeoutError):
    """A wait gave up before the awaited state came."""


BY_STATUS: dict[int, type[ApiError]] = {
    cls.status: cls
    for cls in (Invalid, Unauthorized, Forbidden, NotFound, Conflict, TooManyRequests,
                Unavailable)
}


def error_for(status: int, message: str, body: Any = None, method: str = "",
              url: str = "") -> ApiError:
    """The exception for an error answer (422 counts as :class:`Invalid`)."""
    cls = BY_STATUS.get(status) or (Invalid if status == 422 else
                                    ServerError if status >= 500 else ApiError)
    return cls(message, status, body, method, url)
