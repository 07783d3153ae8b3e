"""Target choice (override, sticky, weighted random), failover and mirror sampling: pure."""

import random
from collections import Counter

import pytest
from scipy.stats import chisquare

from gateway.routing import RouteTable
from gateway.sticky import StickyKey
from gateway.traffic import (
    FAILOVER,
    OVERRIDE,
    RANDOM,
    STICKY,
    Choice,
    OverrideForbidden,
    TrafficRoute,
    UnknownTarget,
    WeightedTarget,
    choose_target,
    failover_target,
    should_mirror,
)

BOTH = ("a", "b")


def route(*weights: tuple[str, int], sticky=None, prefix="/custom/wine", **kw) -> TrafficRoute:
    return TrafficRoute("wine-ab", prefix, tuple(WeightedTarget(n, w) for n, w in weights),
                        sticky=sticky, **kw)


def choose(r, key=None, draw=0.5, usable=BOTH, override=None, may_override=False):
    return choose_target(r, override=override, may_override=may_override, key=key, draw=draw,
                         usable=usable)


@pytest.mark.parametrize(("draw", "target"), [(0.0, "a"), (0.8999, "a"), (0.9, "b"),
                                              (0.9999999, "b")])
def test_draw_lands_on_the_share_of_each_weight(draw, target):
    assert choose(route(("a", 90), ("b", 10)), draw=draw) == Choice(target, RANDOM)


@pytest.mark.parametrize(("a", "b"), [(90, 10), (50, 50)])
def test_ten_thousand_draws_fit_the_weights(a, b):
    rng = random.Random(7)
    r = route(("a", a), ("b", b))
    counts = Counter(choose(r, draw=rng.random()).target for _ in range(10_000))
    result = chisquare([counts["a"], counts["b"]], [a * 100, b * 100])
    assert result.pvalue > 0.001


def test_weight_zero_is_never_chosen_at_random_or_sticky():
    r = route(("a", 100), ("b", 0), sticky=StickyKey("header", "x-user"))
    draws = [i / 1000 for i in range(1000)] + [0.9999999999999999]
    assert {choose(r, draw=d).target for d in draws} == {"a"}
    assert {choose(r, key=f"k{i}").target for i in range(1000)} == {"a"}


def test_sticky_key_always_gets_the_same_target_whatever_the_draw():
    r = route(("a", 50), ("b", 50), sticky=StickyKey("header", "x-user"))
    for i in range(200):
        chosen = {choose(r, key=f"user-{i}", draw=d).target for d in (0.0, 0.3, 0.7, 0.99)}
        assert len(chosen) == 1
    assert choose(r, key="user-1").assignment == STICKY


def test_no_key_or_no_sticky_config_is_weighted_random():
    sticky = route(("a", 50), ("b", 50), sticky=StickyKey("cookie", "uid"))
    assert choose(sticky, key=None, draw=0.1) == choose(sticky, key=None, draw=0.1)
    assert choose(sticky, key=None, draw=0.1).assignment == RANDOM
    plain = route(("a", 50), ("b", 50))
    assert choose(plain, key="ignored", draw=0.9).target == "b"


def test_override_wins_when_allowed_even_for_weight_zero():
    r = route(("a", 100), ("b", 0), sticky=StickyKey("header", "x-user"))
    got = choose(r, key="user-1", override="b", may_override=True)
    assert (got.target, got.assignment) == ("b", OVERRIDE)


def test_override_needs_a_role_and_a_real_target():
    r = route(("a", 90), ("b", 10))
    with pytest.raises(OverrideForbidden, match="admin, odahu_admin"):
        choose(r, override="b", may_override=False)
    with pytest.raises(UnknownTarget, match="'c' is not a target of model route 'wine-ab'"):
        choose(r, override="c", may_override=True)


def test_unusable_target_gets_no_traffic_and_healthy_keys_do_not_move():
    r = route(("a", 40), ("b", 20), ("c", 40), sticky=StickyKey("header", "x-user"))
    keys = [f"user-{i}" for i in range(20_000)]
    everyone = {k: choose(r, key=k, usable=("a", "b", "c")) for k in keys}
    without_b = {k: choose(r, key=k, usable=("a", "c")) for k in keys}
    for k in keys:
        if everyone[k].target != "b":
            assert without_b[k] == everyone[k]
        else:
            assert without_b[k].target in ("a", "c") and without_b[k].assignment == FAILOVER
    moved = Counter(without_b[k].target for k in keys if everyone[k].target == "b")
    assert 0.4 < moved["a"] / sum(moved.values()) < 0.6  # spread by the others' weights


def test_random_traffic_avoids_an_unusable_target():
    r = route(("a", 50), ("b", 50))
    assert {choose(r, draw=i / 100, usable=("a",)).target for i in range(100)} == {"a"}


def test_with_no_usable_target_the_weights_still_decide():
    r = route(("a", 50), ("b", 50))
    assert choose(r, draw=0.9, usable=()).target == "b"


def test_failover_skips_tried_unusable_and_weight_zero_targets():
    r = route(("a", 50), ("b", 0), ("c", 30), ("d", 20))
    assert failover_target(r, ["a"], ("a", "b", "c"), 0.99) == "c"
    assert failover_target(r, ["a", "c"], ("a", "b", "c"), 0.5) is None
    picks = Counter(failover_target(r, ["a"], ("c", "d"), i / 1000) for i in range(1000))
    assert picks == {"c": 600, "d": 400}


@pytest.mark.parametrize(("percent", "copied"), [(0, 0), (25, 250), (100, 1000)])
def test_mirror_percentage(percent, copied):
    assert sum(should_mirror(percent, i / 1000) for i in range(1000)) == copied


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"url_prefix": "/custom/x/"}, "must start and not end"),
    ({"targets": ()}, "needs targets"),
    ({"targets": (WeightedTarget("a", 0),)}, "no target with a weight"),
    ({"mirror_percent": 101}, "0-100"),
])
def test_route_checks_itself(kwargs, message):
    base = {"id": "r", "url_prefix": "/custom/x", "targets": (WeightedTarget("a", 100),)}
    with pytest.raises(ValueError, match=message):
        TrafficRoute(**{**base, **kwargs})


def test_table_matches_the_longest_prefix_on_whole_segments():
    table = RouteTable()
    wine = route(("a", 100))
    red = TrafficRoute("red", "/custom/wine/red", (WeightedTarget("b", 100),))
    assert table.set_routes([wine, red]) is True
    assert table.set_routes([red, wine]) is False
    assert table.match("/custom/wine/api/model/invoke?x=/custom/wine/red") is wine
    assert table.match("/custom/wine") is wine
    assert table.match("/custom/wine/") is wine
    assert table.match("/custom/wine/red/api/model/invoke") is red
    assert table.match("/custom/wine2/api") is None
    assert table.match("/custom") is None
    table.set_routes([red])
    assert table.match("/custom/wine/api") is None
