"""A deployment's admission bounds and rate limit from its ``mlgate.io/*`` annotations, and
the revoked tokens' list: validation (pure) and the SQLite store."""

from __future__ import annotations

import pytest

from deploy.control.autoscaler import ScalingPolicy
from deploy.control.deployments import parse_deployment
from deploy.control.protection import admission_for, protection_errors, rate_limits_for
from deploy.control.reconciler import Publish, reconcile
from deploy.control.resource import ValidationError
from deploy.control.revocations import RevocationStore, parse_revocation
from deploy.control.store import NotFound
from gateway import Admission, RateRule

DEFAULTS = Admission(max_in_flight_per_replica=32, max_waiting=100)


def test_annotations_override_the_configured_bounds():
    annotations = {"mlgate.io/max-in-flight-per-replica": "1", "mlgate.io/max-waiting": "0",
                   "mlgate.io/timeout": "2.5", "mlgate.io/max-timeout": "30"}
    assert protection_errors(annotations) == []
    assert admission_for(DEFAULTS, annotations) == Admission(1, 0, 2.5, 30.0)
    assert admission_for(DEFAULTS, {}) is DEFAULTS


def test_a_deployments_own_rate_limit():
    (rule,) = rate_limits_for("wine", {"mlgate.io/rate-limit": "600/m",
                                       "mlgate.io/rate-limit-burst": "20",
                                       "mlgate.io/rate-limit-key": "claim:tenant"})
    assert rule == RateRule("deployment", 10.0, 20, "claim:tenant", ("wine",))
    assert rate_limits_for("wine", {"mlgate.io/rate-limit": "5"})[0].burst == 5
    assert rate_limits_for("wine", {}) == ()


@pytest.mark.parametrize(("annotations", "message"), [
    ({"mlgate.io/max-waiting": "-1"}, "whole number >= 0"),
    ({"mlgate.io/max-in-flight-per-replica": "two"}, "whole number >= 0"),
    ({"mlgate.io/timeout": "0"}, "seconds > 0"),
    ({"mlgate.io/max-timeout": "forever"}, "seconds > 0"),
    ({"mlgate.io/rate-limit": "lots"}, "not a rate"),
    ({"mlgate.io/rate-limit": "5", "mlgate.io/rate-limit-key": "ip"}, "key must be"),
    ({"mlgate.io/rate-limit": "5", "mlgate.io/rate-limit-burst": "0"}, ">= 1"),
    ({"mlgate.io/rate-limit-burst": "5"}, "need mlgate.io/rate-limit"),
])
def test_bad_annotations_are_refused_when_the_deployment_is_written(annotations, message):
    assert any(message in e for e in protection_errors(annotations))
    with pytest.raises(ValidationError, match=message):
        parse_deployment({"id": "wine", "spec": {"image": "x", "predictor": "odahu-ml-server",
                                                 "annotations": annotations}})


def test_an_unknown_mlgate_annotation_lists_every_known_one():
    with pytest.raises(ValidationError) as err:
        parse_deployment({"id": "wine", "spec": {"image": "x", "predictor": "odahu-ml-server",
                                                 "annotations": {"mlgate.io/max-wait": "1"}}})
    assert "mlgate.io/max-waiting" in str(err.value) and "mlgate.io/window" in str(err.value)


def test_the_reconciler_publishes_the_bounds_and_the_limit():
    dep = parse_deployment({"id": "wine", "spec": {
        "image": "x", "predictor": "odahu-ml-server", "annotations": {
            "mlgate.io/max-in-flight-per-replica": "2", "mlgate.io/rate-limit": "50"}}})
    (publish,) = [a for a in reconcile(dep, None, 1, False, ScalingPolicy(), "now", DEFAULTS)
                  if isinstance(a, Publish)]
    assert publish.admission == Admission(2, 100)
    assert publish.rate_limits[0].rate == 50.0


def test_revocations_are_validated():
    assert parse_revocation({"jti": "abc", "expiresAt": "2030-01-01T00:00:00Z"}, 10.0).jti == "abc"
    sub = parse_revocation({"sub": "alice"}, 10.0)
    assert (sub.sub, sub.before) == ("alice", 10.0)  # before defaults to now
    assert parse_revocation({"sub": "alice", "before": "1700000000"}, 1).before == 1.7e9
    for body, message in (({}, "exactly one of jti"), ({"jti": "a", "sub": "b"}, "exactly one"),
                          ({"jti": "a", "before": 5}, "before goes with sub"),
                          ({"sub": "a", "before": "yesterday"}, "must be a time"),
                          ({"jti": ""}, "non-empty string"), ({"jti": "a", "x": 1}, "unknown")):
        with pytest.raises(ValidationError, match=message):
            parse_revocation(body, 0.0)


def test_the_store_keeps_them_replaces_by_key_forgets_expired_and_tells(tmp_path):
    now = [1000.0]
    store = RevocationStore(tmp_path / "state.db", clock=lambda: now[0])
    changes = []
    store.subscribe(lambda: changes.append(1))
    first, created = store.add(parse_revocation({"jti": "t1", "expiresAt": 2000}, now[0]))
    assert created and first.to_dict()["expiresAt"] == "1970-01-01T00:33:20Z"
    again, created = store.add(parse_revocation({"jti": "t1", "reason": "leaked"}, now[0]))
    assert not created and again.id == first.id and again.reason == "leaked"
    store.add(parse_revocation({"sub": "bob", "before": 900, "expiresAt": 1500}, now[0]))
    assert store.current().jtis == {"t1"} and store.current().subjects == {"bob": 900.0}
    store.close()
    reopened = RevocationStore(tmp_path / "state.db", clock=lambda: now[0])  # a restart
    assert [r.jti or r.sub for r in reopened.list()] == ["t1", "bob"]
    now[0] = 1600.0
    assert [r.sub for r in reopened.list()] == [None]  # bob's entry expired
    reopened.delete(first.id)
    assert not reopened.current()
    with pytest.raises(NotFound):
        reopened.delete(first.id)
    assert len(changes) == 3
    reopened.close()
