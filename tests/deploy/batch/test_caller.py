"""Model calls against a gateway stand-in on 127.0.0.1: refused rows are isolated, retryable
answers retried with backoff, refusals of the job itself stop it."""

from collections import Counter

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from deploy.batch.caller import JobAbort, ModelCaller


class Gateway:
    """Answers like the gateway in front of odahu-ml-server: quality = 2 * x; a row whose x
    is a string is refused with 400; ``busy`` request ids get 503 that many times."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.busy: Counter[str] = Counter()
        self.status: int | None = None
        self.headers: list[dict[str, str]] = []

    async def invoke(self, request: web.Request) -> web.Response:
        rid = request.headers["Request-ID"]
        body = orjson.loads(await request.read())
        self.calls.append((rid, len(body["data"])))
        self.headers.append(dict(request.headers))
        if self.status:
            return web.json_response({"message": "role(s) viewer may not invoke"},
                                     status=self.status)
        if self.busy[rid]:
            self.busy[rid] -= 1
            return web.json_response({"message": "no ready replica"}, status=503)
        for i, row in enumerate(body["data"]):
            if isinstance(row[0], str):
                return web.json_response(
                    {"message": f'column "x": expected a number, got "{row[0]}" (row {i})'},
                    status=400)
        return web.json_response({"prediction": [2 * r[0] for r in body["data"]],
                                  "columns": ["quality"]})


@pytest.fixture
async def gateway():
    fake = Gateway()
    app = web.Application()
    app.router.add_post("/model/wine/api/model/invoke", fake.invoke)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url(""))
    yield fake
    await server.close()


def caller(gateway, **kw):
    options = {"concurrency": 2, "retries": 2, "timeout": 10, "backoff_base": 0.01, **kw}
    return ModelCaller(gateway.url, "wine", "job", "secret-token", **options)


async def test_refused_rows_are_isolated_and_the_rest_predicted(gateway):
    rows = [[float(i)] for i in range(16)]
    rows[5], rows[11] = ["bad"], ["worse"]
    async with caller(gateway) as c:
        result = await c.predict(["x"], rows, lambda i: f"job-a.csv-{i}")
    predicted = {i: values for p in result.predicted for i, values in p.rows()}
    assert sorted(predicted) == [i for i in range(16) if i not in (5, 11)]
    assert all(values == (2 * rows[i][0],) for i, values in predicted.items())
    assert result.rows == 14
    assert result.columns == ["quality"]
    assert [(e.index, e.status, e.request_id) for e in result.errors] == [
        (5, 400, "job-a.csv-5"), (11, 400, "job-a.csv-11")]
    assert result.errors[0].message == 'column "x": expected a number, got "bad" (row 0)'
    # a predicted row carries the Request-ID of the call that predicted it
    assert {p.request_id for p in result.predicted} <= {rid for rid, _ in gateway.calls}
    assert result.calls == len(gateway.calls) < 16  # halving, not one call per row
    assert gateway.headers[0]["Authorization"] == "Bearer secret-token"
    assert gateway.headers[0]["X-Mlgate-Job"] == "job"


async def test_retryable_answers_are_retried_with_the_same_request_id(gateway):
    gateway.busy["job-a.csv-0"] = 2
    async with caller(gateway) as c:
        result = await c.predict(["x"], [[1.0], [2.0]], lambda i: f"job-a.csv-{i}")
    assert [values for p in result.predicted for _, values in p.rows()] == [(2.0,), (4.0,)]
    assert gateway.calls == [("job-a.csv-0", 2)] * 3


async def test_a_model_that_stays_unreachable_stops_the_job(gateway):
    gateway.busy["job-a.csv-0"] = 10
    async with caller(gateway) as c:
        with pytest.raises(JobAbort, match="failed 3 times, last: HTTP 503: no ready replica"):
            await c.predict(["x"], [[1.0]], lambda i: f"job-a.csv-{i}")


async def test_a_refused_job_stops_at_once(gateway):
    gateway.status = 403
    async with caller(gateway) as c:
        with pytest.raises(JobAbort, match="HTTP 403: role"):
            await c.predict(["x"], [[1.0], [2.0]], lambda i: f"job-a.csv-{i}")
    assert len(gateway.calls) == 1


async def test_nothing_listening_is_retried_then_stops_the_job(unused_tcp_port):
    c = ModelCaller(f"http://127.0.0.1:{unused_tcp_port}", "wine", "job", None, concurrency=1,
                    retries=1, timeout=5, backoff_base=0.01)
    async with c:
        with pytest.raises(JobAbort, match="cannot be reached"):
            await c.predict(["x"], [[1.0]], lambda i: f"job-a.csv-{i}")
