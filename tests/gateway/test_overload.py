"""Overload of the gateway process: the pure level rule, and the app shedding mirror copies
first, then new data-plane requests, and recovering on its own (memory read from a stub,
so the test decides the pressure; the loop-lag path is the same rule)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway import (
    MIRROR,
    OVERLOAD,
    GatewayConfig,
    OverloadConfig,
    RouteTable,
    TrafficRoute,
    WeightedTarget,
    create_app,
)
from gateway.overload import OverloadMonitor, Sample, next_level, pressure
from tests.gateway.traffic_upstreams import upstreams, wait_for

CONFIG = OverloadConfig(max_memory_mb=100, max_loop_lag_ms=200, interval=0.01,
                        recover_after=0.05)


def test_pressure_is_the_worse_of_memory_and_lag():
    assert pressure(Sample(50, 20), CONFIG) == (0.5, "memory")
    assert pressure(Sample(50, 190), CONFIG) == (0.95, "loop_lag")
    assert pressure(Sample(500, 0), OverloadConfig(max_loop_lag_ms=10))[0] == 0.0  # not watched


@pytest.mark.parametrize(("level", "value", "since", "now", "expected"), [
    (0, 0.5, None, 0.0, (0, None)),
    (0, 0.85, None, 0.0, (1, None)),        # mirror copies first
    (0, 1.2, None, 0.0, (2, None)),         # straight to new requests when far over
    (2, 0.95, None, 0.0, (2, None)),        # not below 0.9 of the mark: stays
    (2, 0.5, None, 1.0, (2, 1.0)),          # low: the recovery clock starts ...
    (2, 0.5, 1.0, 1.5, (2, 1.0)),           # ... not long enough yet ...
    (2, 0.5, 1.0, 3.0, (1, None)),          # ... then one level down
    (1, 0.75, None, 0.0, (1, None)),        # 0.75 >= 0.8 * 0.9: still level 1
    (1, 0.5, 0.0, 5.0, (0, None)),
    (1, 1.1, 0.0, 5.0, (2, None)),          # rising again resets the clock
])
def test_levels_rise_at_once_and_fall_after_a_quiet_spell(level, value, since, now, expected):
    assert next_level(level, value, since, now, recover_after=2.0) == expected


def test_the_monitor_moves_between_levels_and_logs_each_move(caplog):
    caplog.set_level(logging.INFO, "mlgate.gateway.overload")
    monitor = OverloadMonitor(CONFIG, rss_mb=lambda: 0)
    monitor.observe(Sample(85, 0), 0.0)
    assert monitor.shed_mirror and not monitor.shed_requests
    monitor.observe(Sample(120, 0), 0.1)
    assert monitor.level == 2 and monitor.cause == "memory"
    for t in (0.2, 0.3, 0.4, 0.5):
        monitor.observe(Sample(10, 0), t)
    assert monitor.level == 0
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING", "INFO", "INFO"]
    assert "shedding new requests" in caplog.records[1].getMessage()


@pytest.fixture
async def gw():
    table = RouteTable()
    ups = await upstreams(table, "a", "shadow")
    table.set_routes([TrafficRoute("r", "/custom/r", (WeightedTarget("a", 100),),
                                   mirror="shadow")])
    app = create_app(GatewayConfig(overload=CONFIG), table, lambda e: None)
    memory = {"mb": 10.0}
    app[OVERLOAD]._rss_mb = lambda: memory["mb"]  # the test decides what the process uses
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield app, client, memory
    await client.close()
    for upstream in ups.values():
        await upstream.close()


async def wait_level(app, level: int) -> None:
    await wait_for(lambda: app[OVERLOAD].level == level, f"overload level {level}")


async def test_mirror_copies_are_shed_first_then_requests_and_it_recovers(gw):
    app, client, memory = gw
    assert (await client.post("/custom/r/api/model/invoke", json={})).status == 200
    await asyncio.sleep(0.05)
    assert app[MIRROR].stats.copied == 1

    memory["mb"] = 85  # 0.85 of the mark: copies go, requests stay
    await wait_level(app, 1)
    assert (await client.post("/custom/r/api/model/invoke", json={})).status == 200
    assert app[MIRROR].stats.shed == 1 and app[MIRROR].stats.copied == 1

    memory["mb"] = 150  # over the mark: new data-plane requests are refused at once
    await wait_level(app, 2)
    refused = await client.post("/model/a/api/model/invoke", json={})
    assert refused.status == 503 and refused.headers["Retry-After"] == "2"
    assert (await refused.json()) == {"message": "the gateway is overloaded (memory); retry "
                                                 "later", "reason": "overloaded"}
    feedback = await client.post("/api/v1/feedback", json={})
    assert feedback.status == 503 and feedback.headers["Retry-After"] == "2"
    assert (await client.get("/health")).status == 200  # liveness still answers
    metrics = await client.get("/metrics")  # so does monitoring
    text = await metrics.text()
    assert 'mlgate_requests_shed_total{deployment="a",reason="overload_memory"} 1.0' in text
    assert "mlgate_overload_level 2.0" in text

    memory["mb"] = 10  # pressure gone: back to normal on its own
    await wait_level(app, 0)
    assert (await client.post("/custom/r/api/model/invoke", json={})).status == 200
    await asyncio.sleep(0.05)
    assert app[MIRROR].stats.copied == 2
