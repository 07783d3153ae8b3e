"""The drivers: retries, errors raised into operations, progress shown — through httpx's
in-process transport (the documented way to stand in for a server)."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

import mlgate
from mlgate._steps import Progress


def handler_of(answers: list):
    calls = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handle, calls


def clients(answers: list, **kw):
    handle, calls = handler_of(answers)
    sync = mlgate.Client("http://mlgate.test", "t0ken", transport=httpx.MockTransport(handle),
                         progress=False, **kw)
    return sync, calls


def test_503_with_retry_after_is_retried_then_answered(monkeypatch):
    slept = []
    monkeypatch.setattr("mlgate._drive.time.sleep", slept.append)
    client, calls = clients([
        httpx.Response(503, headers={"Retry-After": "2"}, json={"message": "no replica yet"}),
        httpx.Response(200, json=[])])
    assert list(client.deployments.list()) == []
    assert slept == [2.0] and len(calls) == 2
    assert calls[0].headers["authorization"] == "Bearer t0ken"


def test_503_stays_an_error_after_the_retries(monkeypatch):
    monkeypatch.setattr("mlgate._drive.time.sleep", lambda s: None)
    busy = httpx.Response(503, headers={"Retry-After": "1"}, json={"message": "spool full"})
    client, calls = clients([busy] * 3, retries=2)
    with pytest.raises(mlgate.Unavailable) as err:
        client.deployments.list()
    assert err.value.message == "spool full" and len(calls) == 3


def test_a_refused_connection_is_retried_then_reported(monkeypatch):
    monkeypatch.setattr("mlgate._drive.time.sleep", lambda s: None)
    refused = httpx.ConnectError("connection refused")
    client, calls = clients([refused, httpx.Response(200, json=[])])
    assert list(client.routes.list()) == []
    client, calls = clients([refused] * 4)
    with pytest.raises(mlgate.ConnectionFailed, match=re.escape(
            "cannot reach mlgate at http://mlgate.test/api/v1/model/route")):
        client.routes.list()
    assert len(calls) == 4


def test_a_read_timeout_is_not_retried(monkeypatch):
    client, calls = clients([httpx.ReadTimeout("slow")])
    with pytest.raises(mlgate.ConnectionFailed):
        client.deployments.list()
    assert len(calls) == 1


def test_errors_carry_the_servers_message_and_status():
    client, _ = clients([httpx.Response(404, json={"message": 'entity "x" is not found'})])
    with pytest.raises(mlgate.NotFound) as err:
        client.deployments.get("x")
    assert err.value.status == 404 and err.value.message == 'entity "x" is not found'
    assert err.value.method == "GET" and err.value.url.endswith("/deployment/x")


def test_the_async_client_runs_the_same_operations():
    handle, calls = handler_of([httpx.Response(404, json={"message": "nope"}),
                                httpx.Response(200, json=[{"id": "wine", "spec": {},
                                                           "status": {"state": "Ready"}}])])

    async def main():
        async with mlgate.AsyncClient("http://mlgate.test", "", progress=False,
                                      transport=httpx.MockTransport(handle)) as client:
            with pytest.raises(mlgate.NotFound):
                await client.deployments.get("x")
            return await client.deployments.list()

    found = asyncio.run(main())
    assert [d.id for d in found] == ["wine"]
    assert "authorization" not in calls[0].headers


def test_progress_goes_to_the_sink_and_is_closed_on_errors():
    shown: list[Progress] = []
    dep = {"id": "w", "spec": {}, "status": {"state": "Processing"}}
    handle, _ = handler_of([httpx.Response(200, json=dep),
                            httpx.Response(500, json={"message": "broken"})])
    client = mlgate.Client("http://mlgate.test", "", transport=httpx.MockTransport(handle),
                           progress=lambda: shown.append)
    with pytest.raises(mlgate.ServerError):
        client.deployments.wait("w")
    assert [p.text for p in shown] == ["w: Processing (0/0 replicas available)",
                                       "stopped: broken (HTTP 500)"]
    assert shown[-1].done
