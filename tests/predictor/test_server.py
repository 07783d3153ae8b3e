"""The aiohttp app in-process, over a stand-in model (no MLflow): routes, headers, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from predictor.inputs import InputPlan
from predictor.model import LoadedModel
from predictor.openapi import build_openapi
from predictor.schema import Column
from predictor.server import make_app

COLUMNS = ["b", "a"]  # signature order; requests may use any order


def _predict(batch: np.ndarray) -> np.ndarray:
    if (batch < 0).any():
        raise ValueError("negative input")
    if (batch == 0.5).any():
        raise RuntimeError("model broke")
    return batch[:, 0] * 10 + batch[:, 1]  # 10*b + a: shows the column order


def _model() -> LoadedModel:
    inputs = [Column(name, "double") for name in COLUMNS]
    return LoadedModel(
        name="toy",
        version="2.5",
        path=Path("/models/toy"),
        plan=InputPlan(inputs),
        outputs=("y",),
        strategy="test",
        predict=_predict,
        openapi=build_openapi(
            model_name="toy",
            model_version="2.5",
            inputs=inputs,
            outputs=[Column("y", "double")],
            example_columns=COLUMNS,
            example_rows=[[1.0, 2.0]],
            example_prediction=[12.0],
            prediction_columns=["y"],
        ),
    )


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(make_app(_model(), max_body_bytes=256 * 1024))) as c:
        yield c


async def _call(client: TestClient, method: str, path: str, **kw: Any) -> tuple[int, Any, Any]:
    async with client.request(method, path, **kw) as response:
        assert response.headers["Model-Name"] == "toy"
        assert response.headers["Model-Version"] == "2.5"
        assert response.content_type == "application/json"
        return response.status, await response.json(), response.headers


async def test_healthcheck(client: TestClient) -> None:
    for path in ("/healthcheck", "/ping", "/health"):
        assert (await _call(client, "GET", path))[:2] == (200, {"status": "ok"})


async def test_info_is_the_openapi_document(client: TestClient) -> None:
    status, body, _ = await _call(client, "GET", "/api/model/info")
    assert status == 200
    assert body["info"] == {**body["info"], "title": "toy", "version": "2.5"}
    assert body["x-mlgate"]["has_examples"] is True


async def test_invoke_reorders_columns(client: TestClient) -> None:
    status, body, _ = await _call(
        client, "POST", "/api/model/invoke", json={"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}
    )
    assert status == 200
    assert body == {"prediction": [21.0, 43.0], "columns": ["y"]}


async def test_invoke_without_columns_uses_signature_order(client: TestClient) -> None:
    status, body, _ = await _call(client, "POST", "/api/model/invoke", json={"data": [[1, 2]]})
    assert (status, body) == (200, {"prediction": [12.0], "columns": ["y"]})


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"", "request body is empty"),
        (b"[1, 2]", "request body must be a JSON object"),
        (b'{"columns": ["a", "b"]}', 'request body has no "data"'),
        (b'{"data": {"a": 1}}', '"data" must be a list of rows'),
        (b'{"data": [1, 2]}', '"data" must be a list of rows, each a list of values; row 0 is 1'),
        (b'{"data": [[1, 2, 3]]}', "row 0 has 3 values, expected 2 (one per column)"),
        (
            b'{"columns": ["a", "c"], "data": [[1, 2]]}',
            'unknown columns: "c"; missing columns: "b"',
        ),
        (b'{"columns": ["a"], "data": [[1]]}', 'missing columns: "b"'),
        (
            b'{"columns": ["a", "b"], "data": [[1, "abc"]]}',
            'column "b": expected a number, got "abc"',
        ),
    ],
)
async def test_invoke_client_errors(client: TestClient, payload: bytes, message: str) -> None:
    status, body, _ = await _call(client, "POST", "/api/model/invoke", data=payload)
    assert status == 400
    assert message in body["message"]


async def test_model_failure_is_500(client: TestClient) -> None:
    status, body, _ = await _call(client, "POST", "/api/model/invoke", json={"data": [[0.5, 2]]})
    assert (status, body) == (500, {"message": "model failed: model broke"})


async def test_model_refusing_the_input_is_400(client: TestClient) -> None:
    status, body, _ = await _call(client, "POST", "/api/model/invoke", json={"data": [[-1, 2]]})
    assert (status, body) == (400, {"message": "model rejected the input: negative input"})


async def test_large_batches_are_predicted_off_the_loop(client: TestClient) -> None:
    rows = [[1.0, float(i)] for i in range(5000)]
    status, body, _ = await _call(client, "POST", "/api/model/invoke", json={"data": rows})
    assert status == 200
    assert body["prediction"][:2] == [10.0, 11.0] and len(body["prediction"]) == 5000


async def test_unknown_path_and_wrong_method(client: TestClient) -> None:
    status, body, _ = await _call(client, "GET", "/api/model/nothing")
    assert (status, body) == (404, {"message": "no such path: /api/model/nothing"})
    status, body, headers = await _call(client, "GET", "/api/model/invoke")
    assert status == 405
    assert "GET not allowed" in body["message"]
    assert headers["Allow"] == "POST"


async def test_body_too_large(client: TestClient) -> None:
    status, body, _ = await _call(client, "POST", "/api/model/invoke", data=b" " * 300_000)
    assert status == 413
    assert "too large" in body["message"]


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}},
        {"dataframe_records": [{"a": 1, "b": 2}]},
        {"instances": [{"a": 1, "b": 2}]},
        {"inputs": {"a": [1], "b": [2]}},
    ],
)
async def test_invocations_formats(client: TestClient, payload: dict) -> None:
    status, body, _ = await _call(client, "POST", "/invocations", json=payload)
    assert (status, body) == (200, {"predictions": [21.0]})


async def test_invocations_csv(client: TestClient) -> None:
    status, body, _ = await _call(
        client, "POST", "/invocations", data=b"a,b\n1,2\n", headers={"Content-Type": "text/csv"}
    )
    assert (status, body) == (200, {"predictions": [21.0]})


async def test_invocations_errors_look_like_mlflow(client: TestClient) -> None:
    status, body, _ = await _call(client, "POST", "/invocations", json={"data": [[1, 2]]})
    assert status == 400
    assert body["error_code"] == "BAD_REQUEST"
    assert "exactly one of the input fields" in body["message"]
    status, body, _ = await _call(
        client, "POST", "/invocations", data=b"x", headers={"Content-Type": "text/plain"}
    )
    assert status == 415
    assert "unsupported content type" in body["message"]
    status, body, _ = await _call(
        client, "POST", "/invocations", json={"dataframe_split": {"data": [[-1, 1]]}}
    )
    assert (status, body["error_code"]) == (400, "BAD_REQUEST")
    status, body, _ = await _call(
        client, "POST", "/invocations", json={"dataframe_split": {"data": [[0.5, 1]]}}
    )
    assert (status, body["error_code"]) == (500, "INTERNAL_ERROR")
