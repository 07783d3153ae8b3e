"""Sticky keys: fixed positions per route, uniform, and weight changes move only what they must."""

import pytest
from multidict import CIMultiDict
from scipy.stats import chisquare

from gateway.sticky import StickyKey, key_position, sticky_value
from gateway.traffic import WeightedTarget, place

KEYS = [f"user-{i}" for i in range(100_000)]


def split(a: int, b: int) -> list[WeightedTarget]:
    return [WeightedTarget("a", a), WeightedTarget("b", b)]


def assign(targets, keys, salt="route", usable=("a", "b", "c")):
    return {k: place(targets, key_position(salt, k), usable)[0] for k in keys}


def test_same_key_same_position_and_in_unit_interval():
    positions = [key_position("wine-ab", k) for k in KEYS[:1000]]
    assert positions == [key_position("wine-ab", k) for k in KEYS[:1000]]
    assert all(0.0 <= p < 1.0 for p in positions)


def test_positions_differ_between_routes():
    same = sum(key_position("r1", k) == key_position("r2", k) for k in KEYS[:1000])
    assert same == 0
    first = assign(split(50, 50), KEYS[:10_000], salt="r1")
    second = assign(split(50, 50), KEYS[:10_000], salt="r2")
    agree = sum(first[k] == second[k] for k in first) / len(first)
    assert 0.45 < agree < 0.55  # independent experiments: half agree by chance


def test_positions_are_uniform():
    bins = [0] * 20
    for k in KEYS[:40_000]:
        bins[int(key_position("wine-ab", k) * 20)] += 1
    assert chisquare(bins).pvalue > 0.001


def test_fifty_fifty_to_sixty_forty_moves_only_ten_percent_from_b_to_a():
    before = assign(split(50, 50), KEYS)
    after = assign(split(60, 40), KEYS)
    moved = [k for k in KEYS if before[k] != after[k]]
    assert {(before[k], after[k]) for k in moved} == {("b", "a")}
    assert 0.09 < len(moved) / len(KEYS) < 0.11


def test_same_weights_keep_every_key():
    assert assign(split(70, 30), KEYS[:20_000]) == assign(split(70, 30), KEYS[:20_000])


def test_canary_steps_only_ever_move_users_towards_the_canary():
    steps = [(100, 0), (90, 10), (50, 50), (0, 100)]
    previous = None
    for a, b in steps:
        current = assign(split(a, b), KEYS[:20_000])
        if previous is not None:
            assert all(previous[k] == current[k] or current[k] == "b" for k in current)
        previous = current


def test_neighbours_in_a_three_way_split_exchange_keys_only_between_them():
    three = [WeightedTarget("a", 40), WeightedTarget("b", 20), WeightedTarget("c", 40)]
    moved_three = [WeightedTarget("a", 40), WeightedTarget("b", 30), WeightedTarget("c", 30)]
    before, after = assign(three, KEYS[:50_000]), assign(moved_three, KEYS[:50_000])
    moves = {(before[k], after[k]) for k in before if before[k] != after[k]}
    assert moves == {("c", "b")}


@pytest.mark.parametrize(("sticky", "expected"), [
    (StickyKey("header", "X-User"), "u-1"),
    (StickyKey("header", "x-missing"), None),
    (StickyKey("cookie", "session"), "s-9"),
    (StickyKey("cookie", "empty"), None),
    (StickyKey("claim", "sub"), "alice"),
    (StickyKey("claim", "tenant"), "42"),
    (StickyKey("claim", "flag"), None),
    (StickyKey("claim", "groups"), None),
])
def test_sticky_value_from_header_cookie_or_claim(sticky, expected):
    headers = CIMultiDict({"x-user": " u-1 "})
    cookies = {"session": "s-9", "empty": ""}
    claims = {"sub": "alice", "tenant": 42, "flag": True, "groups": ["a"]}
    assert sticky_value(sticky, headers, cookies, claims) == expected


def test_claim_without_principal_is_no_key():
    assert sticky_value(StickyKey("claim", "sub"), {}, {}, None) is None


def test_sticky_key_checks_its_source():
    with pytest.raises(ValueError, match="sticky source"):
        StickyKey("query", "user")
