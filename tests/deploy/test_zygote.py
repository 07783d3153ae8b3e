"""Replicas forked from the predictor zygote: warm, adopted, isolated, stopped like spawned ones."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import aiohttp
import psutil
import pytest

from deploy.local.process import ModelCannotLoad, start_replica, stop_replica
from deploy.local.zygote import Zygote, reap_orphans
from tests.conftest import SEED_COLUMNS, SEED_ROW

pytestmark = pytest.mark.e2e


@pytest.fixture
async def zygote(tmp_path: Path):
    z = Zygote(tmp_path / "zygote.log")
    z.start()
    deadline = time.monotonic() + 120
    while not z.ready:
        assert time.monotonic() < deadline, (tmp_path / "zygote.log").read_text()[-2000:]
        await asyncio.sleep(0.05)
    yield z
    await z.close()


async def invoke(port: int) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{port}/api/model/invoke",
                                json={"columns": SEED_COLUMNS, "data": [SEED_ROW]}) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def test_a_forked_replica_serves_its_model_as_this_process_child(zygote, demo_models,
                                                                        tmp_path):
    assert zygote.import_seconds > 0 and zygote.warm_seconds > 0
    started = time.perf_counter()
    replica = await start_replica("wine", 0, str(demo_models / "wine-v1"), tmp_path / "logs",
                                  60, fork=zygote.fork)
    took = time.perf_counter() - started
    try:
        proc = psutil.Process(replica.process.pid)
        assert proc.ppid() == os.getpid()  # adopted: the runtime reaps it, as a spawned one
        assert os.getsid(proc.pid) == proc.pid  # its own session
        assert (await invoke(replica.port))["prediction"]
        assert replica.model_name == "wine"
        assert replica.usage() is not None
    finally:
        await stop_replica(replica, 5)
    assert replica.process.returncode == 0  # SIGTERM: finished in-flight requests, exit 0
    assert not psutil.pid_exists(replica.process.pid) or \
        psutil.Process(replica.process.pid).status() != psutil.STATUS_ZOMBIE
    assert took < 30


async def test_a_killed_replica_reports_the_signal_and_leaves_no_zombie(zygote, demo_models,
                                                                        tmp_path):
    replica = await start_replica("wine", 1, str(demo_models / "wine-v1"), tmp_path / "logs",
                                  60, fork=zygote.fork)
    os.kill(replica.process.pid, signal.SIGKILL)
    assert await asyncio.wait_for(replica.process.wait(), 10) == -signal.SIGKILL
    assert replica.process.returncode == -signal.SIGKILL
    assert not psutil.pid_exists(replica.process.pid)
    await stop_replica(replica, 1)  # stopping what already ended is fine


async def test_a_model_that_cannot_load_gives_up_through_the_zygote_too(zygote, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors: {python_function: {loader_module: nowhere}}\n")
    with pytest.raises(ModelCannotLoad):
        await start_replica("broken", 0, str(broken), tmp_path / "logs", 60, fork=zygote.fork)


async def test_without_a_ready_zygote_a_replica_is_spawned(demo_models, tmp_path):
    z = Zygote(tmp_path / "zygote.log")  # never started: not ready
    replica = await start_replica("wine", 2, str(demo_models / "wine-v1"), tmp_path / "logs",
                                  120, fork=z.fork)
    try:
        assert isinstance(replica.process, asyncio.subprocess.Process)
        assert (await invoke(replica.port))["prediction"]
    finally:
        await stop_replica(replica, 5)


async def test_a_dead_zygote_is_started_again(zygote, demo_models, tmp_path, monkeypatch):
    monkeypatch.setattr("deploy.local.zygote.RESTART_DELAY", 0.1)
    first = zygote._process.pid
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while zygote._process is None or zygote._process.pid == first or not zygote.ready:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    replica = await start_replica("wine", 3, str(demo_models / "wine-v1"), tmp_path / "logs",
                                  60, fork=zygote.fork)
    try:
        assert psutil.Process(replica.process.pid).ppid() == os.getpid()
    finally:
        await stop_replica(replica, 5)


def test_orphans_are_reaped_once_seen_twice():
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    deadline = time.monotonic() + 10
    while psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    seen = reap_orphans(known={pid}, seen=set())
    assert pid not in seen  # a replica of ours is never reaped here
    seen = reap_orphans(known=set(), seen=set())
    assert pid in seen and psutil.pid_exists(pid)  # first look: only noted
    reap_orphans(known=set(), seen=seen)
    assert not psutil.pid_exists(pid)


async def test_a_start_during_the_warm_up_waits_for_the_zygote(demo_models, tmp_path):
    z = Zygote(tmp_path / "zygote.log")
    z.start()
    try:
        assert not z.ready
        replica = await start_replica("wine", 4, str(demo_models / "wine-v1"),
                                      tmp_path / "logs", 120, fork=z.fork)
        try:
            assert z.ready
            assert not isinstance(replica.process, asyncio.subprocess.Process)  # forked
            assert psutil.Process(replica.process.pid).ppid() == os.getpid()
        finally:
            await stop_replica(replica, 5)
    finally:
        await z.close()


async def test_a_forked_replica_shows_the_command_line_of_a_spawned_one(zygote, demo_models,
                                                                         tmp_path):
    replica = await start_replica("wine", 5, str(demo_models / "wine-v1"), tmp_path / "logs",
                                  60, fork=zygote.fork)
    try:
        cmdline = " ".join(psutil.Process(replica.process.pid).cmdline())
        assert "-m predictor --model-uri" in cmdline and "models/wine-v1" in cmdline
        assert "zygote" not in cmdline
    finally:
        await stop_replica(replica, 5)


@pytest.mark.parametrize(("given", "mode"), [
    ("auto", "auto"), ("always", "always"), ("never", "never"), (True, "always"),
    (False, "never"), ("TRUE", "always")])
def test_the_zygote_setting(given, mode):
    from deploy.config import RuntimeSettings

    assert RuntimeSettings(zygote=given).zygote == mode


def test_an_unknown_zygote_setting_is_refused():
    from deploy.config import ConfigError, RuntimeSettings

    with pytest.raises(ConfigError, match=r"local\.zygote"):
        RuntimeSettings(zygote="sometimes")


@pytest.mark.parametrize(("mode", "min_replicas", "started"), [
    ("auto", 1, False), ("auto", 0, True), ("never", 0, False)])
async def test_auto_starts_the_zygote_once_a_deployment_can_scale_to_zero(
        tmp_path, demo_models, mode, min_replicas, started):
    from deploy.config import load_settings
    from deploy.control.deployments import parse_deployment
    from deploy.local.runtime import LocalRuntime

    settings = load_settings(None, env={}, overrides={"data_dir": str(tmp_path),
                                                      "local": {"zygote": mode}})
    runtime = LocalRuntime(settings)
    await runtime.start(lambda: None)
    try:
        dep = parse_deployment({"id": "wine", "spec": {
            "image": f"file://{demo_models / 'wine-v1'}", "predictor": "odahu-ml-server",
            "minReplicas": min_replicas, "maxReplicas": 1}})
        runtime.apply(dep, 0)
        zygote = runtime.zygote
        assert (zygote is not None and zygote._task is not None) is started
    finally:
        await runtime.close()
