"""The primary <-> worker link: table snapshots (pure), load reports, framing over a socketpair."""

import asyncio
import socket

from deploy.serve.worker_link import Link, apply_snapshot, load_report, snapshot
from deploy.serve.workers import orphan_spool_dirs, worker_spool_dir
from gateway import Admission, RateRule, RouteTable
from gateway.sticky import StickyKey
from gateway.traffic import TrafficRoute, WeightedTarget


def primary_table() -> RouteTable:
    table = RouteTable()
    a = table.upsert("a", "wine", "1", role_name="role-a")
    a.cold_start_timeout, a.ready = 30.0, True
    a.admission = Admission(max_in_flight_per_replica=4, max_waiting=8, timeout=2.0)
    a.rate_limits = (RateRule("deployment", 50.0, 50, "sub", ("a",)),)
    table.set_replicas("a", [("127.0.0.1", 9001), ("127.0.0.1", 9002)])
    b = table.upsert("b", "wine", "2")
    b.ready = False
    table.set_unavailable("b", "the model cannot load")
    table.set_routes([TrafficRoute("r", "/custom/wine", (WeightedTarget("a", 90),
                                                        WeightedTarget("b", 10)),
                                   mirror="b", sticky=StickyKey("header", "x-user"))])
    return table


def test_a_worker_table_follows_the_primary_and_keeps_its_counters():
    primary = primary_table()
    worker = RouteTable()
    demanded = []
    apply_snapshot(worker, snapshot(primary), demanded.append)
    assert snapshot(worker) == snapshot(primary)
    a = worker.get("a")
    assert a.role_name == "role-a" and a.cold_start_timeout == 30.0 and a.on_demand
    assert a.admission == Admission(4, 8, 2.0) and a.rate_limits[0].rate == 50.0
    assert worker.get("b").unavailable_reason == "the model cannot load"
    assert worker.match("/custom/wine/api/model/invoke").mirror == "b"
    a.replicas[0].outstanding, a.requests = 3, 7
    a.on_demand("a")
    assert demanded == ["a"]

    primary.set_replicas("a", [("127.0.0.1", 9001), ("127.0.0.1", 9003)])
    primary.remove("b")
    primary.set_routes([])
    apply_snapshot(worker, snapshot(primary), demanded.append)
    assert snapshot(worker) == snapshot(primary)
    assert worker.get("a") is a and a.requests == 7
    assert [r.outstanding for r in a.replicas] == [3, 0]  # the replica that stayed kept its count
    assert worker.get("b") is None and worker.routes() == []


async def test_a_request_waiting_for_a_replica_wakes_when_the_snapshot_brings_one():
    primary = primary_table()
    primary.set_replicas("a", [])
    worker = RouteTable()
    apply_snapshot(worker, snapshot(primary), lambda _id: None)
    waiting = asyncio.create_task(worker.get("a").wait_for_replicas(5))
    await asyncio.sleep(0.01)
    primary.set_replicas("a", [("127.0.0.1", 9009)])
    apply_snapshot(worker, snapshot(primary), lambda _id: None)
    assert await waiting is True


def test_load_report_is_requests_in_flight_and_shed_per_deployment():
    table = primary_table()
    table.get("a").requests, table.get("a").in_flight, table.get("a").shed = 5, 2, 3
    assert load_report(table) == {"a": (5, 2, 3), "b": (0, 0, 0)}


def test_the_primary_adds_up_its_workers_reports_as_increments():
    from deploy.serve.workers import WorkerPool

    table = primary_table()
    pool = WorkerPool(3, table, ["true"])
    w1, w2 = pool.workers
    pool._take_load(w1, {"a": (5, 2, 3)})
    pool._take_load(w2, {"a": (1, 1, 0)})
    pool._take_load(w1, {"a": (7, 0, 4)})
    a = table.get("a")
    assert (a.peer_requests, a.peer_in_flight, a.peer_shed) == (8, 1, 4)
    pool._forget_load(w1)
    pool._take_load(w1, {"a": (1, 0, 1)})  # restarted: counts from zero again
    assert (a.peer_requests, a.peer_shed) == (9, 5)


async def test_messages_cross_a_socketpair_in_order_and_end_at_close():
    left, right = socket.socketpair()
    a, b = await Link.open(left), await Link.open(right)
    a.send("table", snapshot(primary_table()))
    a.send("demand", "a")
    assert (await b.receive())[1] == snapshot(primary_table())
    assert await b.receive() == ("demand", "a")
    await a.close()
    assert await b.receive() is None
    await b.close()


def test_orphan_spools_are_those_of_indexes_this_run_does_not_start(tmp_path):
    for i in (1, 2, 3):
        worker_spool_dir(tmp_path, i).mkdir(parents=True)
    (tmp_path / "spool" / "worker-x").mkdir()
    assert [p.name for p in orphan_spool_dirs(tmp_path, 3)] == ["worker-3"]
    assert [p.name for p in orphan_spool_dirs(tmp_path, 1)] == ["worker-1", "worker-2",
                                                              "worker-3"]
    assert orphan_spool_dirs(tmp_path / "none", 2) == []
