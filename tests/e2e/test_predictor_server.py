"""``python -m predictor`` as a real process on 127.0.0.1, over HTTP.

Two servers are started once for the module, side by side: wine-v1 bound with
``--port``, wine-v2 on an inherited socket with ``--fd``. The shutdown and the
load-failure tests start their own processes. Every process is stopped in a
``finally``.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "wine"
WINE = [
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
]
# The seed document's request: columns in alphabetical order, integers among the numbers.
SEED = {
    "columns": [
        "alcohol",
        "chlorides",
        "citric acid",
        "density",
        "fixed acidity",
        "free sulfur dioxide",
        "pH",
        "residual sugar",
        "sulphates",
        "total sulfur dioxide",
        "volatile acidity",
    ],
    "data": [[12.8, 0.029, 0.48, 0.98, 6.2, 29, 3.33, 1.2, 0.39, 75, 0.66]],
}
SEED_BY_NAME = dict(zip(SEED["columns"], SEED["data"][0], strict=True))
SEED_IN_ORDER = [SEED_BY_NAME[name] for name in WINE]
START_TIMEOUT = 120.0


@pytest.fixture(scope="session")
def wine_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo models: ``examples/wine/models`` if built, else trained once into a tmp dir."""
    built = EXAMPLES / "models"
    if all((built / v / "MLmodel").is_file() for v in ("wine-v1", "wine-v2")):
        return built
    out = tmp_path_factory.mktemp("wine-models")
    subprocess.run(
        [sys.executable, str(EXAMPLES / "train.py"), "--out", str(out)],
        check=True,
        timeout=600,
        cwd=ROOT,
    )
    return out


class Predictor:
    """One ``python -m predictor`` process and where it answers."""

    def __init__(self, args: list[str], log: Path, pass_fds: tuple[int, ...] = ()) -> None:
        self.log = log
        self.url = ""
        with open(log, "wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "predictor", *args, "--log-level", "info"],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                pass_fds=pass_fds,
            )

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, url: str, timeout: float = START_TIMEOUT) -> Predictor:
        self.url = url
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"predictor exited with {self.proc.returncode}:\n{self.stderr()}")
            try:
                if call("GET", f"{url}/healthcheck", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"predictor not ready after {timeout}s:\n{self.stderr()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(
    method: str,
    url: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, Message, Any]:
    """One HTTP exchange: (status, headers, decoded JSON body)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, err.headers, json.loads(err.read())


@pytest.fixture(scope="module")
def servers(wine_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """wine-v1 on ``--port`` and wine-v2 on ``--fd``, started in parallel."""
    logs = tmp_path_factory.mktemp("predictor-logs")
    port = free_port()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    fd_port = listener.getsockname()[1]
    started: list[Predictor] = []
    try:
        by_port = Predictor(
            ["--model-uri", str(wine_model_dir / "wine-v1"), "--port", str(port)],
            logs / "v1.log",
        )
        started.append(by_port)
        by_fd = Predictor(
            [
                "--model-uri",
                f"file://{wine_model_dir / 'wine-v2'}",
                "--fd",
                str(listener.fileno()),
                "--model-name",
                "wine-fd",
            ],
            logs / "v2.log",
            pass_fds=(listener.fileno(),),
        )
        started.append(by_fd)
        listener.close()  # the child holds its own copy
        by_port.wait_ready(f"http://127.0.0.1:{port}")
        by_fd.wait_ready(f"http://127.0.0.1:{fd_port}")
        yield {"v1": by_port, "v2": by_fd}
    finally:
        listener.close()
        codes = [p.stop() for p in started]
        assert codes == [0] * len(started), [p.stderr() for p in started]


@pytest.fixture
def v1(servers: dict) -> str:
    return servers["v1"].url


def test_seed_request(v1: str) -> None:
    status, headers, body = call("POST", f"{v1}/api/model/invoke", SEED)
    assert status == 200
    assert list(body) == ["prediction", "columns"]
    assert body["columns"] == ["quality"]
    assert len(body["prediction"]) == 1 and 3 < body["prediction"][0] < 9
    assert headers["Model-Name"] == "wine"
    assert headers["Model-Version"] == "1.0"
    assert headers["Content-Type"].startswith("application/json")


def test_column_order_does_not_matter(v1: str) -> None:
    _, _, seed = call("POST", f"{v1}/api/model/invoke", SEED)
    _, _, named = call("POST", f"{v1}/api/model/invoke", {"columns": WINE, "data": [SEED_IN_ORDER]})
    _, _, bare = call("POST", f"{v1}/api/model/invoke", {"data": [SEED_IN_ORDER]})
    assert seed == named == bare


def test_info_document(v1: str) -> None:
    status, headers, doc = call("GET", f"{v1}/api/model/info")
    assert status == 200 and headers["Model-Name"] == "wine"
    assert doc["openapi"].startswith("3.0")
    assert (doc["info"]["title"], doc["info"]["version"]) == ("wine", "1.0")
    assert doc["x-mlgate"] == {"model_name": "wine", "model_version": "1.0", "has_examples": True}
    invoke = doc["paths"]["/api/model/invoke"]["post"]
    request = invoke["requestBody"]["content"]["application/json"]
    assert request["schema"]["properties"]["columns"]["items"]["enum"] == WINE
    assert request["example"]["columns"] == WINE and len(request["example"]["data"]) == 3
    response = invoke["responses"]["200"]["content"]["application/json"]["example"]
    assert response["columns"] == ["quality"] and len(response["prediction"]) == 3
    _, _, again = call("POST", f"{v1}/api/model/invoke", request["example"])
    assert again == response
    assert "/invocations" in doc["paths"]


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": SEED},
        {"dataframe_split": {**SEED, "index": [7]}},
        {"dataframe_records": [SEED_BY_NAME]},
        {"instances": [SEED_BY_NAME]},
        {"inputs": {name: [value] for name, value in SEED_BY_NAME.items()}},
    ],
)
def test_invocations_formats(v1: str, payload: dict) -> None:
    _, _, expected = call("POST", f"{v1}/api/model/invoke", SEED)
    status, headers, body = call("POST", f"{v1}/invocations", payload)
    assert status == 200
    assert body == {"predictions": expected["prediction"]}
    assert headers["Model-Version"] == "1.0"


def test_invocations_csv(v1: str) -> None:
    _, _, expected = call("POST", f"{v1}/api/model/invoke", SEED)
    csv = ",".join(SEED["columns"]) + "\n" + ",".join(map(str, SEED["data"][0])) + "\n"
    status, _, body = call(
        "POST", f"{v1}/invocations", raw=csv.encode(), headers={"Content-Type": "text/csv"}
    )
    assert (status, body) == (200, {"predictions": expected["prediction"]})


BAD_PH = [[*SEED_IN_ORDER[:8], "abc", *SEED_IN_ORDER[9:]]]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "request body is not valid JSON"),
        (b"[]", "request body must be a JSON object"),
        (b'{"columns": []}', 'request body has no "data"'),
        (b'{"data": 5}', '"data" must be a list of rows'),
        (b'{"data": [1, 2]}', '"data" must be a list of rows, each a list of values'),
        (b'{"data": [[1, 2]]}', "row 0 has 2 values, expected 11 (one per column)"),
        (
            json.dumps({"columns": [*WINE[:-1], "alcool"], "data": [SEED_IN_ORDER]}).encode(),
            'unknown columns: "alcool"',
        ),
        (
            json.dumps({"columns": WINE[:-1], "data": [SEED_IN_ORDER[:-1]]}).encode(),
            'missing columns: "alcohol"',
        ),
        (
            json.dumps({"columns": WINE, "data": BAD_PH}).encode(),
            'column "pH": expected a number, got "abc"',
        ),
    ],
)
def test_client_errors(v1: str, raw: bytes, message: str) -> None:
    status, headers, body = call("POST", f"{v1}/api/model/invoke", raw=raw)
    assert status == 400
    assert message in body["message"]
    assert (headers["Model-Name"], headers["Model-Version"]) == ("wine", "1.0")


def test_unknown_path_and_method(v1: str) -> None:
    status, headers, body = call("GET", f"{v1}/nothing/here")
    assert status == 404 and "message" in body and headers["Model-Name"] == "wine"
    status, headers, body = call("GET", f"{v1}/api/model/invoke")
    assert status == 405 and "message" in body and headers["Model-Version"] == "1.0"


def test_fd_mode_serves_the_second_model(servers: dict) -> None:
    url = servers["v2"].url
    status, headers, body = call("POST", f"{url}/api/model/invoke", SEED)
    assert status == 200 and body["columns"] == ["quality"]
    assert (headers["Model-Name"], headers["Model-Version"]) == ("wine-fd", "2.0")
    _, _, v1_body = call("POST", f"{servers['v1'].url}/api/model/invoke", SEED)
    assert body["prediction"] != v1_body["prediction"]
    _, _, doc = call("GET", f"{url}/api/model/info")
    assert (doc["info"]["title"], doc["info"]["version"]) == ("wine-fd", "2.0")


def test_sigterm_finishes_the_request_in_flight_and_exits_0(
    wine_model_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    predictor = Predictor(
        ["--model-uri", str(wine_model_dir / "wine-v1"), "--port", str(port)], tmp_path / "log"
    )
    try:
        predictor.wait_ready(f"http://127.0.0.1:{port}")
        body = json.dumps({"columns": SEED["columns"], "data": SEED["data"] * 3}).encode()
        head = (
            f"POST /api/model/invoke HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(head + body[:-1])  # the request is in flight: its end is missing
            time.sleep(0.5)
            predictor.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert predictor.proc.poll() is None, "exited with a request in flight"
            client.sendall(body[-1:])
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                chunk = client.recv(65536)
                if not chunk:
                    break
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["columns"] == ["quality"]
        assert predictor.proc.wait(timeout=30) == 0
        assert "stopping" in predictor.stderr()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        predictor.stop()


def _broken_model(wine_model_dir: Path, tmp_path: Path) -> Path:
    broken = tmp_path / "broken-model"
    shutil.copytree(wine_model_dir / "wine-v1", broken)
    (broken / "model.skops").write_bytes(b"this is not a model")
    return broken


@pytest.mark.parametrize("kind", ["missing", "broken"])
def test_model_that_cannot_load_exits_3(wine_model_dir: Path, tmp_path: Path, kind: str) -> None:
    target = tmp_path / "nowhere" if kind == "missing" else _broken_model(wine_model_dir, tmp_path)
    predictor = Predictor(
        ["--model-uri", str(target), "--port", str(free_port())], tmp_path / "log"
    )
    try:
        assert predictor.proc.wait(timeout=START_TIMEOUT) == 3
        lines = [
            line
            for line in predictor.stderr().splitlines()
            if line.startswith("predictor: cannot load model from ")
        ]
        assert len(lines) == 1, predictor.stderr()
        assert lines[0].startswith(f"predictor: cannot load model from {target}: ")
        if kind == "missing":
            assert lines[0].endswith("does not exist")
    finally:
        predictor.stop()
