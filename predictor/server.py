"""The predictor's HTTP face: an aiohttp app around one :class:`LoadedModel`.

Routes ("odahu-ml-server" protocol, plus MLflow's scoring endpoint):

* ``GET /healthcheck`` (also ``/ping``, ``/health``) -> ``{"status": "ok"}``
* ``GET /api/model/info`` -> the OpenAPI document built at load
* ``POST /api/model/invoke`` -> ``{"prediction": [...], "columns": [...]}``
* ``POST /invocations`` -> ``{"predictions": [...]}`` (MLflow)

Every answer, errors included, carries ``Model-Name`` and ``Model-Version``. Errors
are JSON ``{"message": ...}``: 400 for a request the model cannot take, 500
``model failed: ...`` when the model raises (400 ``model rejected the input: ...`` when it
raises ``ValueError``, scikit-learn's way of refusing input), 404/405/413 from routing and limits.

Small batches are predicted inline on the event loop (a few hundred microseconds,
cheaper than a thread hop); batches above ``OFFLOAD_ROWS`` go to a worker thread so
the loop keeps answering health checks.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from predictor.inputs import InputError
from predictor.model import LoadedModel
from predictor.payloads import (
    csv_input,
    invocations_body,
    invocations_input,
    invoke_body,
    invoke_input,
    parse_json,
)

log = logging.getLogger("predictor")

MODEL_KEY = web.AppKey("model", LoadedModel)
OFFLOAD_ROWS = 1000
MAX_BODY_BYTES = 64 * 1024 * 1024
SHUTDOWN_TIMEOUT = 30.0
BACKLOG = 1024
JSON = "application/json"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Drain:
    """Requests being handled, so that shutdown can wait for them.

    aiohttp's own graceful shutdown stops reading from every connection first, so a
    request whose body is still arriving would be cut off; the predictor instead stops
    listening, lets handlers finish (answering with ``Connection: close``), and only
    then lets aiohttp close what is left.
    """

    def __init__(self) -> None:
        self.active = 0
        self.draining = False
        self._idle: asyncio.Event | None = None

    def done(self) -> None:
        self.active -= 1
        if self.active == 0 and self._idle is not None:
            self._idle.set()

    async def wait(self, timeout: float) -> bool:
        """Stop keeping connections alive; wait for the last request. False on timeout."""
        self.draining = True
        if self.active == 0:
            return True
        self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


DRAIN_KEY = web.AppKey("drain", Drain)


def make_app(model: LoadedModel, *, max_body_bytes: int = MAX_BODY_BYTES) -> web.Application:
    """The aiohttp application serving ``model``; everything per-model is computed here."""
    base_headers = {"Model-Name": model.name, "Model-Version": model.version}
    ok_headers = {**base_headers, "Content-Type": JSON}
    plan, predict, outputs = model.plan, model.predict, model.outputs
    health_body = orjson.dumps({"status": "ok"})
    info_body = orjson.dumps(model.openapi)

    def answer(body: bytes) -> web.Response:
        return web.Response(body=body, headers=ok_headers)

    def error(status: int, message: str, mlflow: bool = False, **extra: str) -> web.Response:
        payload: dict[str, Any] = {"message": message}
        if mlflow:  # MLflow's scoring server also names an error code
            payload = {"error_code": "BAD_REQUEST" if status < 500 else "INTERNAL_ERROR", **payload}
        return web.Response(
            body=orjson.dumps(payload), status=status, headers={**ok_headers, **extra}
        )

    def model_error(err: Exception, mlflow: bool = False) -> web.Response:
        """A ``ValueError`` from the model is its verdict on the input (scikit-learn's
        convention: non-finite values, overflow in a transform) -> 400; anything else is
        the model failing -> 500."""
        if isinstance(err, ValueError):
            log.info("model rejected the input: %s", _brief(err))
            return error(400, f"model rejected the input: {_brief(err)}", mlflow)
        log.exception("model failed")
        return error(500, f"model failed: {_brief(err)}", mlflow)

    async def run(batch: Any) -> Any:
        if len(batch) > OFFLOAD_ROWS:
            return await asyncio.get_running_loop().run_in_executor(None, predict, batch)
        return predict(batch)

    async def healthcheck(request: web.Request) -> web.Response:
        return answer(health_body)

    async def info(request: web.Request) -> web.Response:
        return answer(info_body)

    async def invoke(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            columns, rows = invoke_input(parse_json(body))
            batch = plan.convert(columns, rows)
        except InputError as err:
            return error(400, str(err))
        try:
            return answer(invoke_body(await run(batch), outputs))
        except Exception as err:
            return model_error(err)

    async def invocations(request: web.Request) -> web.Response:
        body = await request.read()
        content_type = request.headers.get("Content-Type")
        mime = request.content_type if content_type else JSON
        try:
            if mime == JSON:
                columns, rows = invocations_input(parse_json(body))
            elif mime == "text/csv":
                columns, rows = csv_input(body)
            else:
                return error(
                    415,
                    f"unsupported content type {content_type!r}; send {JSON} or text/csv",
                    mlflow=True,
                )
            batch = plan.convert(columns, rows)
        except InputError as err:
            return error(400, str(err), mlflow=True)
        try:
            return answer(invocations_body(await run(batch)))
        except Exception as err:
            return model_error(err, mlflow=True)

    drain = Drain()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count the request for shutdown; routing and limit errors as JSON with the
        model headers; never a bare 500."""
        drain.active += 1
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            extra = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
            response = error(exc.status, _reason(exc, request), **extra)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unexpected error on %s %s", request.method, request.path)
            response = error(500, "internal error")
        finally:
            drain.done()
        if drain.draining:
            response.force_close()
        return response

    app = web.Application(middlewares=[guard], client_max_size=max_body_bytes)
    app[MODEL_KEY] = model
    app[DRAIN_KEY] = drain
    for path in ("/healthcheck", "/ping", "/health"):
        app.router.add_get(path, healthcheck)
    app.router.add_get("/api/model/info", info)
    app.router.add_post("/api/model/invoke", invoke)
    app.router.add_post("/invocations", invocations)
    return app


def _brief(err: BaseException, limit: int = 500) -> str:
    """An exception as a short message: MLflow's can quote the whole input."""
    text = str(err) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reason(exc: web.HTTPException, request: web.Request) -> str:
    if exc.status == 404:
        return f"no such path: {request.path}"
    if exc.status == 405:
        return (
            f"method {request.method} not allowed on {request.path}; use {exc.headers.get('Allow')}"
        )
    if exc.status == 413:
        return f"request body too large: {exc.text}"
    return exc.text or exc.reason


async def serve(
    model: LoadedModel,
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    sock: socket.socket | None = None,
    access_log: bool = False,
    shutdown_timeout: float = SHUTDOWN_TIMEOUT,
) -> None:
    """Serve ``model`` until SIGTERM or SIGINT, then finish in-flight requests and return.

    With ``sock`` (an inherited, bound socket) ``host``/``port`` are ignored.
    """
    app = make_app(model)
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("aiohttp.access") if access_log else None,
        shutdown_timeout=shutdown_timeout,
    )
    await runner.setup()
    try:
        if sock is not None:
            site: web.BaseSite = web.SockSite(runner, sock, backlog=BACKLOG)
        else:
            site = web.TCPSite(runner, host, port, backlog=BACKLOG)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        addresses = ", ".join(f"http://{a[0]}:{a[1]}" for a in runner.addresses)
        log.info("serving %s %s on %s (%s)", model.name, model.version, addresses, model.strategy)
        await stop.wait()
        log.info("stopping: no new connections, finishing in-flight requests")
        await site.stop()
        if not await app[DRAIN_KEY].wait(shutdown_timeout):
            log.warning("requests still running after %ss; closing anyway", shutdown_timeout)
    finally:
        await runner.cleanup()
