"""Fixtures shared by the suites: the demo MLflow models and a real ``mlgate up`` process."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest_plugins = ["tests.storage.servers"]  # moto and GCS emulator fixtures

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "wine"
SEED_COLUMNS = ["alcohol", "chlorides", "citric acid", "density", "fixed acidity",
                "free sulfur dioxide", "pH", "residual sugar", "sulphates",
                "total sulfur dioxide", "volatile acidity"]
SEED_ROW = [12.8, 0.029, 0.48, 0.98, 6.2, 29, 3.33, 1.2, 0.39, 75, 0.66]


def wait_until(check, timeout: float = 180.0, interval: float = 0.2, what: str = "a condition"):
    """Poll ``check()`` until it returns something truthy (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:g}s")
        time.sleep(interval)


@pytest.fixture(scope="session")
def demo_models() -> Path:
    """The two demo wine models, trained once if ``make demo-models`` has not run."""
    models = EXAMPLES / "models"
    if not all((models / v / "MLmodel").is_file() for v in ("wine-v1", "wine-v2")):
        subprocess.run([sys.executable, str(EXAMPLES / "train.py"), "--out", str(models)],
                       check=True, timeout=600)
    return models


class MlgateProcess:
    """``mlgate up`` as a real process; ``url`` is known once it printed its ready line."""

    def __init__(self, args: list[str], data_dir: Path, env: dict[str, str] | None = None):
        self.args = args
        self.data_dir = data_dir
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.stdout_lines: list[str] = []
        self.stderr_path = data_dir.parent / f"{data_dir.name}.stderr.log"
        self.token = ""  # an admin bearer token the stack accepts (set once it is ready)

    @property
    def headers(self) -> dict[str, str]:
        """Headers every test call needs (credentials)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self, **kw) -> httpx.Client:
        """An HTTP client for this stack: base URL and credentials set."""
        kw.setdefault("timeout", 60)
        return httpx.Client(base_url=self.url, headers={**self.headers, **kw.pop("headers", {})},
                            **kw)

    def deployment(self, dep_id: str) -> dict | None:
        """The deployment as the API shows it, or None if it does not exist."""
        with self.client() as client:
            resp = client.get(f"/api/v1/model/deployment/{dep_id}")
        if resp.status_code == 404:
            return None
        resp.raise_for_status()
        return resp.json()

    def wait_state(self, dep_id: str, *states: str, timeout: float = 180) -> dict:
        """Poll the API until the deployment's state is one of ``states``; the deployment."""
        def check():
            dep = self.deployment(dep_id)
            return dep if dep is not None and dep["status"]["state"] in states else None
        return wait_until(check, timeout, what=f"deployment {dep_id} to be {'/'.join(states)}")

    def start(self, timeout: float = 180) -> MlgateProcess:
        cmd = [sys.executable, "-m", "deploy.cli", "up", "--port", "0",
               "--data-dir", str(self.data_dir), *self.args]
        self.stderr_file = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, text=True,
                                     stdout=subprocess.PIPE, stderr=self.stderr_file)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.proc and self.proc.stdout
            for line in self.proc.stdout:
                lines.put(line.rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        self._lines = lines
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"mlgate exited with {self.proc.wait()}: {self.stderr()}")
            self.stdout_lines.append(line)
            if line.startswith("mlgate ready on "):
                self.url = line.removeprefix("mlgate ready on ")
                self.token = self.mint_token(["admin"])
                return self
        self.stop()
        raise RuntimeError(f"mlgate did not become ready in {timeout}s: {self.stderr()}")

    def mint_token(self, roles: list[str], ttl: float = 3600, subject: str = "e2e") -> str:
        """A token for this stack's own key (or HS256 secret); "" when auth is off or external."""
        from deploy.config import ConfigError, load_settings
        from deploy.keys import mint_token

        config = self.args[self.args.index("--config") + 1] if "--config" in self.args else None
        settings = load_settings(config, env=self.env, overrides={"data_dir": str(self.data_dir)})
        if not settings.auth.enabled:
            return ""
        try:
            return mint_token(settings.auth, settings.data_path, roles=roles, subject=subject,
                              ttl=ttl)
        except ConfigError:
            return ""

    def stderr(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.stderr_file.close()
        return code


class MlgateFactory:
    """Starts stacks under one directory and stops every one of them at ``close``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.started: list[MlgateProcess] = []

    def __call__(self, args: list[str], data_dir: Path | None = None, **kw) -> MlgateProcess:
        proc = MlgateProcess(args, data_dir or self.base / f"data{len(self.started)}", **kw)
        self.started.append(proc)
        return proc.start()

    def close(self) -> None:
        for proc in self.started:
            proc.stop()


@pytest.fixture
def mlgate(tmp_path: Path) -> Iterator[MlgateFactory]:
    """Factory: ``mlgate(args)`` starts a stack for one test."""
    factory = MlgateFactory(tmp_path)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def mlgate_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlgateFactory]:
    """Factory for stacks shared by the tests of one module (tests must leave them running)."""
    factory = MlgateFactory(tmp_path_factory.mktemp("mlgate"))
    yield factory
    factory.close()
