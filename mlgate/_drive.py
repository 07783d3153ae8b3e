"""The two drivers of an operation (``_steps.py``): one over ``httpx.Client``, one over
``httpx.AsyncClient``. They are the only code that sends, sleeps or shows progress; what to
do between two steps (retry or not, raise or not, which step is next) is shared."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Generic

import httpx

from ._steps import (
    NO_JSON,
    Call,
    Op,
    Progress,
    RetryPolicy,
    Sleep,
    Step,
    T,
    response_message,
    retry_delay,
)
from .errors import ConnectionFailed, MlgateError, error_for

ProgressSink = Callable[[Progress], None]
SinkFactory = Callable[[], ProgressSink]
Http = httpx.Client | httpx.AsyncClient

NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Failures before the request left: always safe to try again."""


def _request(http: Http, call: Call) -> httpx.Request:
    kw: dict[str, Any] = {"params": call.params, "headers": call.headers}
    if call.json is not NO_JSON:
        kw["json"] = call.json
    elif call.content is not None:
        kw["content"] = call.content
    return http.build_request(call.method, call.url, **kw)


def _settle(http: Http, call: Call, policy: RetryPolicy, attempt: int,
            resp: httpx.Response | None, exc: httpx.HTTPError | None) -> float | httpx.Response:
    """After one attempt: the response to hand over, or seconds to wait before the next
    attempt. Raises the error to hand over instead."""
    if exc is not None:
        delay = retry_delay(policy, attempt, None, None) if isinstance(exc, NOT_SENT) else None
        if delay is not None:
            return delay
        where = call.url if "://" in call.url else str(http.base_url).rstrip("/") + call.url
        raise ConnectionFailed(f"cannot reach mlgate at {where}: "
                               f"{exc or type(exc).__name__}") from exc
    assert resp is not None
    delay = retry_delay(policy, attempt, resp.status_code, resp.headers.get("retry-after"))
    if delay is not None:
        return delay
    if resp.status_code < 400 or resp.status_code in call.ok:
        return resp
    message, body = response_message(resp)
    raise error_for(resp.status_code, message, body, call.method, str(resp.request.url))


def send_sync(http: httpx.Client, call: Call, policy: RetryPolicy) -> httpx.Response:
    attempt = 0
    while True:
        resp, exc = None, None
        try:
            resp = http.send(_request(http, call))
        except httpx.HTTPError as error:
            exc = error
        outcome = _settle(http, call, policy, attempt, resp, exc)
        if isinstance(outcome, httpx.Response):
            return outcome
        attempt += 1
        time.sleep(outcome)


async def send_async(http: httpx.AsyncClient, call: Call, policy: RetryPolicy) -> httpx.Response:
    attempt = 0
    while True:
        resp, exc = None, None
        try:
            resp = await http.send(_request(http, call))
        except httpx.HTTPError as error:
            exc = error
        outcome = _settle(http, call, policy, attempt, resp, exc)
        if isinstance(outcome, httpx.Response):
            return outcome
        attempt += 1
        await asyncio.sleep(outcome)


class Runner(Generic[T]):
    """One operation on its way: the next step, the value or error it gets back, progress.

    ``with Runner(op, sinks) as run: while (step := run.next()) is not None: ...``; the
    result is ``run.result``.
    """

    def __init__(self, op: Op[T], progress: SinkFactory | None) -> None:
        self._op = op
        self._factory = progress
        self._sink: ProgressSink | None = None
        self.value: Any = None
        self.error: MlgateError | None = None
        self.result: T

    def next(self) -> Step | None:
        value, error = self.value, self.error
        self.value, self.error = None, None
        try:
            return self._op.throw(error) if error is not None else self._op.send(value)
        except StopIteration as stop:
            self.result = stop.value
            return None

    def show(self, step: Progress) -> None:
        if self._factory is None:
            return
        if self._sink is None:
            self._sink = self._factory()
        self._sink(step)
        if step.done:
            self._sink = None

    def __enter__(self) -> Runner[T]:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if self._sink is not None:
            self._sink(Progress(f"stopped: {exc}" if exc else "", done=True))
            self._sink = None
        self._op.close()


def run_sync(op: Op[T], http: httpx.Client, policy: RetryPolicy,
             progress: SinkFactory | None) -> T:
    with Runner(op, progress) as run:
        while (step := run.next()) is not None:
            try:
                if isinstance(step, Call):
                    run.value = send_sync(http, step, policy)
                elif isinstance(step, Sleep):
                    time.sleep(step.seconds)
                else:
                    run.show(step)
            except MlgateError as exc:
                run.error = exc
        return run.result


async def run_async(op: Op[T], http: httpx.AsyncClient, policy: RetryPolicy,
                    progress: SinkFactory | None) -> T:
    with Runner(op, progress) as run:
        while (step := run.next()) is not None:
            try:
                if isinstance(step, Call):
                    run.value = await send_async(http, step, policy)
                elif isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                else:
                    run.show(step)
            except MlgateError as exc:
                run.error = exc
        return run.result
