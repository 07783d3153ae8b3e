"""mlgate's error tree, and the one place where exceptions become responses.

    GatewayError                 any answer the gateway gives instead of the model's
    ├── BadRequest          400
    ├── NotFound            404
    ├── PayloadTooLarge     413
    ├── ServiceUnavailable  503  (no ready replica; carries Retry-After)
    │   └── admission.Shed       refused at once to protect the gateway or the model
    ├── ratelimit.RateLimited   429  (carries Retry-After and the RateLimit-* fields)
    ├── admission.DeadlineExceeded  504  (the deadline passed before it was sent)
    └── UpstreamError            the replica could not be reached or failed mid-way
        ├── UpstreamConnectError   502  (refused / reset before the request was sent)
        ├── UpstreamProtocolError  502  (closed or garbled mid-exchange)
        └── UpstreamTimeout        504

Every error answer is JSON. The default body is ``{"message": "...", "reason": "<kind>"}``;
a path whose API promises another shape (the seed's feedback endpoint) registers
its own formatter with :func:`set_error_format`. Another package's exceptions become
answers here too: :func:`add_exception_handler` maps an exception class (looked up along
its MRO, as starlette does) to ``(status, message, headers)``, so its handlers need no
``try``/``except`` of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import orjson
from aiohttp import web

from .filters import Answer, Request, Response, answer_json

log = logging.getLogger("mlgate.gateway")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
"""Kept for the aiohttp handlers; filters are typed by :mod:`gateway.filters`."""
ErrorFormat = Callable[[int, str, str], object]
ExceptionMapper = Callable[[Exception], "tuple[int, str, Mapping[str, str] | None]"]


class GatewayError(Exception):
    status = 500
    kind = "internal_error"
    refusal: str | None = None
    """A refusal to protect the gateway or a model (``shed``, ``rate_limited``,
    ``timed_out``, ``revoked``): counted with ``reason`` by :mod:`gateway.refusals`."""
    reason = ""
    record = True
    """Logged as a record when a deployment was chosen (refusals before a replica was
    asked are counted in metrics instead: shedding must stay cheap)."""

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class BadRequest(GatewayError):
    status = 400
    kind = "bad_request"


class NotFound(GatewayError):
    status = 404
    kind = "not_found"


class PayloadTooLarge(GatewayError):
    status = 413
    kind = "payload_too_large"


class ServiceUnavailable(GatewayError):
    status = 503
    kind = "unavailable"

    def __init__(self, message: str, *, retry_after: int = 1,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after), **(headers or {})})


class UpstreamError(GatewayError):
    status = 502
    kind = "upstream_error"


class UpstreamConnectError(UpstreamError):
    kind = "upstream_connect_failed"


class UpstreamProtocolError(UpstreamError):
    kind = "upstream_protocol_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    kind = "upstream_timeout"
    refusal = "timed_out"
    reason = "read_timeout"


def json_response(status: int, payload: object,
                  headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(payload),
                        content_type="application/json", headers=headers)


def default_error_body(_status: int, message: str, kind: str) -> object:
    return {"message": message, "reason": kind}


class ErrorMapping:
    """Error body formats by path prefix and exception mappers by class: filled while the
    app is assembled (:func:`set_error_format`, :func:`add_exception_handler`), read by
    the error filter of both servers."""

    def __init__(self) -> None:
        self.formats: dict[str, ErrorFormat] = {}
        self.handlers: dict[type[Exception], ExceptionMapper] = {}

    def format_for(self, path: str) -> ErrorFormat:
        for prefix, fmt in self.formats.items():
            if path.startswith(prefix):
                return fmt
        return default_error_body

    def mapper_for(self, exc: Exception) -> ExceptionMapper | None:
        if self.handlers:
            for cls in type(exc).__mro__:
                mapper = self.handlers.get(cls)
                if mapper is not None:
                    return mapper
        return None


ERRORS = web.AppKey("mlgate_errors", ErrorMapping)
REFUSED_KEY = web.RequestKey("mlgate_refused", GatewayError)
"""The refusal (``GatewayError.refusal``) a request was answered with, for the metrics."""


def set_error_format(app: web.Application, path_prefix: str, fmt: ErrorFormat) -> None:
    """Answer errors under ``path_prefix`` with ``fmt(status, message, kind)`` as the JSON body.

    Matched by path, not route, so 404/405/413 raised before routing get the same shape.
    """
    app.setdefault(ERRORS, ErrorMapping()).formats[path_prefix] = fmt


def add_exception_handler(app: web.Application, exc_class: type[Exception],
                          mapper: ExceptionMapper) -> None:
    """Answer ``exc_class`` (and subclasses) raised by a handler as ``mapper(exc)`` says:
    ``(status, message, headers)``, in the error format of the request's path."""
    app.setdefault(ERRORS, ErrorMapping()).handlers[exc_class] = mapper


def error_response(status: int, message: str, kind: str,
                   headers: Mapping[str, str] | None = None,
                   fmt: ErrorFormat = default_error_body) -> web.Response:
    return json_response(status, fmt(status, message, kind), headers)


def error_answer(status: int, message: str, kind: str,
                 headers: Mapping[str, str] | None = None,
                 fmt: ErrorFormat = default_error_body) -> Answer:
    return answer_json(status, fmt(status, message, kind), headers)


def make_error_filter(errors: ErrorMapping) -> Callable:
    """Outermost filter (inside observe): mlgate errors, aiohttp's HTTP exceptions, mapped
    exceptions of other packages and bugs all answer JSON."""

    @web.middleware
    async def error_filter(request: Request, handler: Handler) -> Response:
        try:
            return await handler(request)
        except GatewayError as exc:
            if exc.refusal is not None:
                request[REFUSED_KEY] = exc  # counted by the observe filter
            return error_answer(exc.status, exc.message, exc.kind, exc.headers,
                                errors.format_for(request.path))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {k: v for k, v in exc.headers.items()
                       if k.lower() not in ("content-type", "content-length")}
            message = _http_exception_message(request, exc)
            return error_answer(exc.status, message, exc.reason.lower().replace(" ", "_"),
                                headers, errors.format_for(request.path))
        except Exception as exc:
            mapper = errors.mapper_for(exc)
            fmt = errors.format_for(request.path)
            if mapper is not None:
                status, message, headers = mapper(exc)
                return error_answer(status, message, type(exc).__name__, headers, fmt)
            log.exception("unhandled error on %s %s", request.method, request.path)
            return error_answer(500, "internal error in the gateway", "internal_error", None,
                                fmt)

    return error_filter


def _http_exception_message(request: Request, exc: web.HTTPException) -> str:
    if exc.status == 404:
        return f"no route for {request.path}"
    if exc.status == 405:
        allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ()) or ()))
        return f"method {request.method} is not allowed on {request.path}; allowed: {allowed}"
    text = (exc.text or "").strip()
    prefix = f"{exc.status}: "
    return text.removeprefix(prefix) if text else exc.reason
