"""Both feedback forms against the composed app, stored through the real local backend."""

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from deploy.compose import build_app, build_writer
from deploy.config import load_settings
from deploy.keys import mint_token
from gateway import RouteTable
from storage import StorageError


@pytest.fixture
async def client(tmp_path):
    settings = load_settings(env={}, overrides={"data_dir": str(tmp_path)})
    writer = build_writer(settings)
    await writer.start()
    token = mint_token(settings.auth, settings.data_path, roles=["admin"], subject="t", ttl=600)
    client = TestClient(TestServer(build_app(settings, RouteTable(), writer), host="127.0.0.1"),
                        headers={"Authorization": f"Bearer {token}"})
    await client.start_server()
    client.writer = writer
    yield client
    await client.close()
    await writer.close()


def stored(tmp_path):
    return [orjson.loads(line) for p in sorted((tmp_path / "storage").rglob("*.json"))
            for line in p.read_bytes().splitlines()]


SEED_HEADERS = {"x-model-name": "income", "x-model-version": "1.1",
                "Request-ID": "previous-prediction-id", "Content-Type": "application/json"}


async def test_seed_form(client, tmp_path):
    resp = await client.post("/feedback/model/", data=b'{"truthful": 1}', headers=SEED_HEADERS)
    assert resp.status == 200
    assert await resp.json() == {"error": False, "registered": True, "message": {
        "RequestID": "previous-prediction-id", "ModelVersion": "1.1", "ModelName": "income",
        "Payload": {"json": {"truthful": 1}}}}
    # acknowledged means durable: the record is synced in the spool before the answer
    spooled = [orjson.loads(line) for p in (tmp_path / "spool").glob("*.seg")
               for line in p.read_bytes().splitlines()]
    assert [r["request_id"] for r in spooled] == ["previous-prediction-id"]
    await client.writer.flush()
    [record] = stored(tmp_path)
    assert record["payload"] == {"json": {"truthful": 1}}
    assert record["request_id"] == "previous-prediction-id"
    [path] = (tmp_path / "storage").rglob("*.json")
    assert path.relative_to(tmp_path / "storage").parts[:3] == ("feedback", "income", "1.1")


async def test_sdk_form(client, tmp_path):
    resp = await client.post("/api/v1/feedback", data=b"[1, 2]", headers={
        "model-name": "wine", "model-version": "1.0", "request-id": "r-9"})
    assert resp.status == 200
    assert await resp.json() == {"requestID": "r-9", "modelVersion": "1.0", "modelName": "wine",
                                 "payload": {"json": [1, 2]}}
    await client.writer.flush()
    assert stored(tmp_path)[0]["payload"] == {"json": [1, 2]}


@pytest.mark.parametrize("drop", ["x-model-name", "x-model-version", "Request-ID"])
async def test_missing_header_is_400(client, tmp_path, drop):
    headers = {k: v for k, v in SEED_HEADERS.items() if k != drop}
    resp = await client.post("/feedback/model/", data=b"{}", headers=headers)
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] is True and body["registered"] is False and drop in body["message"]
    assert stored(tmp_path) == []


@pytest.mark.parametrize("body", [b"", b"{not json", b"\xff\xfe", b"   "])
async def test_body_not_json_is_400(client, tmp_path, body):
    resp = await client.post("/feedback/model/", data=body, headers=SEED_HEADERS)
    assert resp.status == 400
    assert (await resp.json())["registered"] is False
    assert stored(tmp_path) == []


@pytest.mark.parametrize(("header", "value"), [
    ("x-model-name", "../etc"), ("x-model-name", "a/b"), ("x-model-version", ".."),
    ("x-model-version", "1 0"), ("x-model-name", "x" * 200), ("x-model-name", ".hidden"),
])
async def test_unsafe_name_or_version_is_400_and_nothing_written(client, tmp_path, header,
                                                                  value):
    resp = await client.post("/feedback/model/", data=b"{}",
                             headers={**SEED_HEADERS, header: value})
    assert resp.status == 400
    assert header in (await resp.json())["message"]
    assert stored(tmp_path) == []
    assert not list(tmp_path.rglob("etc"))


async def test_bad_request_id_answers_in_the_feedback_shape(client, tmp_path):
    resp = await client.post("/feedback/model/", data=b"{}",
                             headers={**SEED_HEADERS, "Request-ID": "a b"})
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] is True and body["registered"] is False
    resp = await client.post("/api/v1/feedback", data=b"{}", headers={
        "model-name": "wine", "model-version": "1.0", "request-id": "a b"})
    assert resp.status == 400 and set(await resp.json()) == {"message"}


async def test_wrong_method_is_405_json(client):
    resp = await client.get("/feedback/model/")
    assert resp.status == 405
    assert (await resp.json())["registered"] is False


async def test_storage_failure_is_503_with_retry_after(client, tmp_path):
    async def fail(*_a, **_k):
        raise StorageError("bucket down")

    client.writer.write_durable = fail
    resp = await client.post("/feedback/model/", data=b"{}", headers=SEED_HEADERS)
    assert resp.status == 503
    assert resp.headers["Retry-After"]
    assert (await resp.json())["registered"] is False
