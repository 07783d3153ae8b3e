"""One contract, three backends: a local directory, moto's S3 server, the GCS emulator."""

import os

import pytest

from storage import LocalBackend, ObjectNotFound, StorageError
from storage.backends.gcs import GCSBackend
from storage.backends.s3 import S3Backend
from tests.storage.servers import S3_ENV, free_port


@pytest.fixture
def aws_env(monkeypatch):
    for name, value in S3_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(params=["local", "s3", "gcs"])
async def backend(request, tmp_path, aws_env):
    if request.param == "local":
        b = LocalBackend(tmp_path / "root")
    elif request.param == "s3":
        server = request.getfixturevalue("s3_server")
        b = S3Backend(server.new_bucket(), endpoint_url=server.url, region="us-east-1")
    else:
        server = request.getfixturevalue("gcs_server")
        b = GCSBackend(server.new_bucket(), endpoint_url=server.url)
    yield b
    await b.close()


async def test_put_get_overwrite(backend):
    key = "feedback/wine/1.0/year=2026/month=11/day=25/2026112509_1.json"
    await backend.put(key, b'{"a": 1}\n')
    assert await backend.get(key) == b'{"a": 1}\n'
    await backend.put(key, b'{"a": 2}\n')
    assert await backend.get(key) == b'{"a": 2}\n'
    assert await backend.list("feedback/") == [key]


async def test_list_by_prefix_sorted(backend):
    keys = ["p/feedback/wine/1.0/2026112509_2.json", "p/feedback/wine/1.0/2026112509_10.json",
            "p/feedback/wine/2.0/2026112509_1.json", "p/request_response/wine/1.0/x.json",
            "q/feedback/wine/1.0/2026112509_1.json"]
    for key in keys:
        await backend.put(key, b"{}\n")
    assert await backend.list("p/feedback/") == sorted(keys[:3])
    assert await backend.list("p/feedback/wine/1.0/2026112509_1") == [keys[1]]
    assert await backend.list("nothing/") == []


async def test_delete_removes_the_object_and_ignores_a_missing_one(backend):
    await backend.put("out/_errors/a.csv.jsonl", b"{}\n")
    await backend.put("out/a.csv", b"row\n")
    await backend.delete("out/_errors/a.csv.jsonl")
    await backend.delete("out/_errors/never-written.jsonl")
    assert await backend.list("out/") == ["out/a.csv"]
    with pytest.raises(ObjectNotFound):
        await backend.get("out/_errors/a.csv.jsonl")


async def test_missing_object_is_object_not_found(backend):
    with pytest.raises(ObjectNotFound):
        await backend.get("feedback/none.json")


@pytest.mark.parametrize("cls", [S3Backend, GCSBackend])
async def test_unreachable_endpoint_is_a_retryable_storage_error(cls, aws_env):
    backend = cls("bucket", endpoint_url=f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(StorageError) as info:
            await backend.put("k.json", b"{}\n")
        assert info.value.retryable
    finally:
        await backend.close()


async def test_missing_bucket_is_not_retryable(s3_server, gcs_server, aws_env):
    for backend in (S3Backend("no-such-bucket", endpoint_url=s3_server.url),
                    GCSBackend("no-such-bucket", endpoint_url=gcs_server.url)):
        try:
            with pytest.raises(StorageError) as info:
                await backend.put("k.json", b"{}\n")
            assert not info.value.retryable, backend.name
        finally:
            await backend.close()


async def test_s3_without_credentials_is_not_retryable(s3_server, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    backend = S3Backend(s3_server.new_bucket(), endpoint_url=s3_server.url)
    try:
        with pytest.raises(StorageError) as info:
            await backend.put("k.json", b"{}\n")
        assert not info.value.retryable and "credentials" in str(info.value).lower()
    finally:
        await backend.close()
    assert "AWS_ACCESS_KEY_ID" not in os.environ
