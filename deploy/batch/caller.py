"""Model calls of a job: through the gateway's own data plane, like any client's.

Every call is ``POST <gateway>/model/<deployment>/api/model/invoke`` with the job's bearer
token and a deterministic ``Request-ID`` (``<job>-<object>-<first row>``), so the gateway
authorizes it, routes it, logs its ``request_response``/``response_body`` records and
counts it in its metrics exactly as an online call; ``X-Mlgate-Job`` names the job in the
stored request headers.

A call's answer is one of (:func:`deploy.control.job_plan.call_outcome`): ``ok``;
``retry`` (the gateway or a replica cannot answer now — 408, 429, 502-504, a broken
connection, a timeout: backed off and sent again, at most ``retries`` times, then the job
stops with :class:`JobAbort`); ``fatal`` (401/403/404: the job's calls are refused as
such, :class:`JobAbort` at once); ``split`` (the model refused the input, or failed on
it: the rows are halved until each refused row stands alone and is reported with the
model's message, while the others are predicted).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from deploy.control.job_plan import backoff_delay, call_outcome

log = logging.getLogger("mlgate.batch")
JOB_HEADER = "X-Mlgate-Job"
MAX_MESSAGE = 2000


class JobAbort(Exception):
    """No row can succeed: the gateway refuses the job's calls or cannot be reached."""


@dataclass(frozen=True, slots=True)
class RowError:
    index: int
    """Index of the row in the call's rows."""
    status: int | None
    message: str
    request_id: str


@dataclass(frozen=True, slots=True)
class Predicted:
    """The answer of one call: rows ``start`` to ``start + len(columns[0])`` of the rows
    given, each output column's values in row order."""

    start: int
    request_id: str
    columns: list[list[Any]]

    def rows(self) -> Iterator[tuple[int, tuple[Any, ...]]]:
        """``(index, values)`` of each row."""
        return zip(range(self.start, self.start + len(self.columns[0])),
                   zip(*self.columns, strict=True), strict=True)


@dataclass
class CallResult:
    predicted: list[Predicted]
    errors: list[RowError]
    columns: list[str] | None
    calls: int = 0

    @property
    def rows(self) -> int:
        return sum(len(p.columns[0]) for p in self.predicted)


class ModelCaller:
    """Calls one deployment through the gateway; at most ``concurrency`` calls in flight."""

    def __init__(self, gateway_url: str, deployment: str, job_id: str, token: str | None,
                 concurrency: int, retries: int, timeout: float, backoff_base: float = 0.5,
                 ) -> None:
        self.url = f"{gateway_url.rstrip('/')}/model/{deployment}/api/model/invoke"
        self.job_id = job_id
        self.retries = retries
        self.backoff_base = backoff_base
        self.headers = {"Content-Type": "application/json", JOB_HEADER: job_id}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ModelCaller:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._concurrency, force_close=False),
            timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def predict(self, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                      request_id: Callable[[int], str]) -> CallResult:
        """Predict ``rows``; ``request_id(i)`` is the Request-ID of a call starting at row i."""
        result = CallResult([], [], None)
        await self._predict(list(columns), rows, 0, request_id, result)
        result.predicted.sort(key=lambda p: p.start)
        result.errors.sort(key=lambda e: e.index)
        return result

    async def _predict(self, columns: list[str], rows: Sequence[Sequence[Any]], offset: int,
                       request_id: Callable[[int], str], result: CallResult) -> None:
        rid = request_id(offset)
        status, body = await self._send(columns, rows, rid)
        result.calls += 1
        outcome = call_outcome(status)
        if outcome == "ok":
            answer = _answer(body, len(rows))
            if isinstance(answer, str):
                outcome = "split"
                body = orjson.dumps({"message": answer})
            else:
                names, values = answer
                result.columns = result.columns or names
                result.predicted.append(Predicted(offset, rid, values))
                return
        if outcome == "fatal":
            raise JobAbort(f"the gateway refused the job's call {rid}: HTTP {status}: "
                           f"{_message(body)}")
        if len(rows) == 1:
            result.errors.append(RowError(offset, status, _message(body), rid))
            return
        half = len(rows) // 2
        await asyncio.gather(
            self._predict(columns, rows[:half], offset, request_id, result),
            self._predict(columns, rows[half:], offset + half, request_id, result))

    async def _send(self, columns: list[str], rows: Sequence[Sequence[Any]],
                    request_id: str) -> tuple[int, bytes]:
        """One call, retried on retryable failures; ``(status, body)`` of its last answer."""
        assert self._session is not None, "use ModelCaller as an async context manager"
        body = orjson.dumps({"columns": columns, "data": rows},
                            option=orjson.OPT_SERIALIZE_NUMPY, default=str)
        headers = {**self.headers, "Request-ID": request_id}
        attempt = 0
        while True:
            problem: str
            async with self._slots:
                try:
                    async with self._session.post(self.url, data=body, headers=headers) as resp:
                        answer = await resp.read()
                        if call_outcome(resp.status) != "retry":
                            return resp.status, answer
                        problem = f"HTTP {resp.status}: {_message(answer)}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            attempt += 1
            if attempt > self.retries:
                raise JobAbort(f"the model cannot be reached through {self.url}: call "
                               f"{request_id} failed {attempt} times, last: {problem}")
            delay = backoff_delay(attempt, self.backoff_base)
            log.warning("call %s: %s; retry %d of %d in %.1fs", request_id, problem, attempt,
                        self.retries, delay)
            await asyncio.sleep(delay)


def _answer(body: bytes, rows: int) -> tuple[list[str], list[list[Any]]] | str:
    """The output columns' names and values (one list per column, in row order) of an
    invoke answer, or why the answer cannot be read as that."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "the model's answer is not JSON"
    prediction = doc.get("prediction") if isinstance(doc, dict) else None
    if not isinstance(prediction, list):
        return 'the model\'s answer has no "prediction" list'
    if len(prediction) != rows:
        return f"the model answered {len(prediction)} predictions for {rows} rows"
    names = doc.get("columns")
    width = len(names) if isinstance(names, list) and names else 1
    if width == 1:
        values = [prediction]
    elif all(isinstance(v, list) and len(v) == width for v in prediction):
        values = [list(c) for c in zip(*prediction, strict=True)]
    else:
        return f"the model's answer has rows that are not {width} values ({names})"
    if not isinstance(names, list) or len(names) != width:
        names = ["prediction"]
    return [str(n) for n in names], values


def _message(body: bytes) -> str:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        text = doc["message"]
    elif isinstance(doc, dict) and isinstance(doc.get("error"), str):
        text = doc["error"]
    else:
        text = body.decode("utf-8", "replace")
    return text[:MAX_MESSAGE]
