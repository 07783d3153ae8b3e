"""Real bucket servers as processes on 127.0.0.1: moto's S3 server and the GCS emulator.

Fixtures here are imported by the storage suites and by the e2e storage
tests. Each server can be paused (SIGSTOP: the bucket hangs, answers are
lost), resumed, stopped and started again on the same port (the GCS emulator
keeps its objects on disk across restarts; moto keeps them in memory, so it
is only ever paused).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import orjson
import pytest

BIN = Path(sys.executable).parent
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
          "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, name: str, argv: list[str], port: int, log: Path,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self, timeout: float = 60) -> ServerProcess:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         env=self.env, cwd=self.cwd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                httpx.get(self.url, timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready in {timeout}s")

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class S3Server:
    """``moto_server`` plus a boto3 client to make buckets and read them back."""

    def __init__(self, server: ServerProcess) -> None:
        import boto3

        self.server = server
        self.url = server.url
        self.client = boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                                   aws_access_key_id="testing", aws_secret_access_key="testing")

    def env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """Environment for ``mlgate`` to store into ``bucket``."""
        return {**S3_ENV, "MLGATE_STORAGE_KIND": "s3", "MLGATE_STORAGE_BUCKET": bucket,
                "MLGATE_STORAGE_ENDPOINT_URL": self.url, "MLGATE_STORAGE_PREFIX": prefix}

    def new_bucket(self) -> str:
        name = f"t-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                      Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))

    def read(self, bucket: str, key: str) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()


class GCSServer:
    """The single-threaded ``gcp-storage-emulator``, objects on disk under ``root``."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.url = server.url

    def env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        return {"MLGATE_STORAGE_KIND": "gcs", "MLGATE_STORAGE_BUCKET": bucket,
                "MLGATE_STORAGE_ENDPOINT_URL": self.url, "MLGATE_STORAGE_PREFIX": prefix,
                # the emulator answers one request at a time
                "MLGATE_STORAGE_SPOOL_UPLOAD_CONCURRENCY": "1"}

    def new_bucket(self) -> str:
        name = f"t-{uuid.uuid4().hex[:12]}"
        resp = httpx.post(f"{self.url}/storage/v1/b", params={"project": "test"},
                          json={"name": name}, timeout=30)
        resp.raise_for_status()
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        keys: list[str] = []
        params = {"prefix": prefix}
        while True:
            resp = httpx.get(f"{self.url}/storage/v1/b/{bucket}/o", params=params, timeout=30)
            resp.raise_for_status()
            page = resp.json()
            keys += [item["name"] for item in page.get("items", ())]
            if not page.get("nextPageToken"):
                return sorted(keys)
            params = {"prefix": prefix, "pageToken": page["nextPageToken"]}

    def read(self, bucket: str, key: str) -> bytes:
        resp = httpx.get(f"{self.url}/storage/v1/b/{bucket}/o/{quote(key, safe='')}",
                         params={"alt": "media"}, timeout=30)
        resp.raise_for_status()
        return resp.content


def bucket_lines(store: S3Server | GCSServer, bucket: str, prefix: str = "") -> Counter[bytes]:
    """The multiset of JSON lines in every object under ``prefix``; every line must parse."""
    lines: Counter[bytes] = Counter()
    for key in store.keys(bucket, prefix):
        for line in store.read(bucket, key).splitlines():
            assert isinstance(orjson.loads(line), dict), f"{key}: {line!r}"
            lines[line] += 1
    return lines


def start_moto(tmp: Path) -> S3Server:
    port = free_port()
    server = ServerProcess("moto_server", [str(BIN / "moto_server"), "-H", "127.0.0.1",
                                           "-p", str(port)], port, tmp / "moto.log")
    return S3Server(server.start())


def start_gcs(tmp: Path) -> GCSServer:
    port = free_port()
    root = tmp / "gcs-data"
    root.mkdir(exist_ok=True)
    server = ServerProcess(
        "gcp-storage-emulator",
        [str(BIN / "gcp-storage-emulator"), "start", "--host", "127.0.0.1", "--port", str(port),
         "--quiet"], port, tmp / "gcs.log", env={"STORAGE_BASE": str(root)}, cwd=root)
    return GCSServer(server.start())


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    store = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield store
    finally:
        store.server.stop()


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GCSServer]:
    store = start_gcs(tmp_path_factory.mktemp("gcs"))
    try:
        yield store
    finally:
        store.server.stop()


@pytest.fixture
def own_gcs_server(tmp_path: Path) -> Iterator[GCSServer]:
    """A GCS emulator of the test's own, for tests that stop and restart it."""
    store = start_gcs(tmp_path)
    try:
        yield store
    finally:
        store.server.stop()


@pytest.fixture
def own_s3_server(tmp_path: Path) -> Iterator[S3Server]:
    """A moto server of the test's own, for tests that pause it."""
    store = start_moto(tmp_path)
    try:
        yield store
    finally:
        store.server.stop()


def wait_until(predicate, timeout: float = 90, interval: float = 0.2) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def storage_stats(stderr: str) -> dict:
    """The writer's counters from the ``storage: {...}`` line ``mlgate up`` logs at exit."""
    import ast

    lines = [line for line in stderr.splitlines() if " mlgate: storage: {" in line]
    assert lines, f"no storage stats line in:\n{stderr[-3000:]}"
    return ast.literal_eval(lines[-1].split(" mlgate: storage: ", 1)[1])
