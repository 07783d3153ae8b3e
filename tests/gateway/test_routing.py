from collections import Counter

from gateway import Replica, RouteTable, pick_replica


def test_pick_least_outstanding():
    a, b, c = Replica("h", 1, outstanding=3), Replica("h", 2, outstanding=1), Replica("h", 3, 2)
    assert pick_replica([a, b, c]) is b


def test_ties_rotate():
    replicas = [Replica("h", p) for p in range(3)]
    counts = Counter(pick_replica(replicas).port for _ in range(300))
    assert counts == {0: 100, 1: 100, 2: 100}


def test_exclude_and_empty():
    a, b = Replica("h", 1), Replica("h", 2)
    assert pick_replica([a, b], exclude=[a]) is b
    assert pick_replica([a], exclude=[a]) is None
    assert pick_replica([]) is None


def test_set_replicas_keeps_counters_of_known_replicas():
    table = RouteTable()
    table.upsert("wine", "wine", "1.0")
    table.set_replicas("wine", [("h", 1), ("h", 2)])
    first = table.get("wine").replicas[0]
    first.outstanding = 4
    table.set_replicas("wine", [("h", 1), ("h", 3)])
    assert table.get("wine").replicas[0] is first
    assert [r.port for r in table.get("wine").replicas] == [1, 3]
    table.remove("wine")
    assert table.get("wine") is None
