"""SDK operations run step by step without sockets: what they send and how they decide."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from mlgate import _ops, errors
from mlgate._steps import Call, Progress, Sleep
from mlgate.objects import Route


class Script:
    """Answers an operation's calls from a list of ``(method, path suffix, response)``."""

    def __init__(self, answers: list[tuple[str, str, Any]]) -> None:
        self.answers = answers
        self.sent: list[Call] = []
        self.shown: list[str] = []

    def run(self, op):
        value = None
        error = None
        while True:
            try:
                step = op.throw(error) if error else op.send(value)
            except StopIteration as stop:
                return stop.value
            value, error = None, None
            if isinstance(step, Call):
                self.sent.append(step)
                method, suffix, answer = self.answers.pop(0)
                assert (step.method, step.url.endswith(suffix)) == (method, True), step
                status, body = answer
                if status >= 400 and status not in step.ok:
                    error = errors.error_for(status, body.get("message", ""), body)
                else:
                    value = httpx.Response(status, json=body,
                                           request=httpx.Request(step.method, "http://x"))
            elif isinstance(step, Progress):
                self.shown.append(step.text)
            else:
                assert isinstance(step, Sleep)


def dep(state: str, **status) -> dict:
    return {"id": "wine", "spec": {"image": "file:///m", "predictor": "odahu-ml-server",
                                   "minReplicas": 1, "maxReplicas": 1},
            "status": {"state": state, "replicas": 1, "availableReplicas": 1, **status}}


def test_deploy_creates_a_new_deployment_and_waits_until_ready():
    body = _ops.deployment_body("wine", "file:///m", "odahu-ml-server", 1, None, {})
    script = Script([("GET", "/deployment/wine", (404, {"message": "not found"})),
                     ("POST", "/deployment", (201, dep("Processing"))),
                     ("GET", "/deployment/wine", (200, dep("Processing"))),
                     ("GET", "/deployment/wine", (200, dep("Ready", modelName="wine",
                                                            modelVersion="1.0")))])
    result = script.run(_ops.apply_deployment(body, wait=True, timeout=60))
    assert result.ready and result.model_version == "1.0"
    assert script.sent[1].json == body
    assert script.shown[-1] == "wine: Ready (1/1 replicas available), model wine 1.0"


def test_deploy_updates_only_when_the_spec_differs():
    same = _ops.deployment_body("wine", "file:///m", "odahu-ml-server", 1, None, {})
    script = Script([("GET", "/deployment/wine", (200, dep("Ready")))])
    assert script.run(_ops.apply_deployment(same, wait=False, timeout=60)).state == "Ready"
    other = _ops.deployment_body("wine", "file:///m2", "odahu-ml-server", 1, None, {})
    script = Script([("GET", "/deployment/wine", (200, dep("Ready"))),
                     ("PUT", "/deployment", (200, dep("Processing")))])
    assert script.run(_ops.apply_deployment(other, wait=False, timeout=60)).state == "Processing"


def test_waiting_ends_with_the_reason_of_a_failure():
    script = Script([("GET", "/deployment/wine", (200, dep("Failed", reason="cannot load")))])
    with pytest.raises(errors.DeploymentFailed, match="cannot load"):
        script.run(_ops.wait_ready("wine", 60))


def test_waiting_gives_up_after_the_timeout():
    script = Script([("GET", "/deployment/wine", (200, dep("Processing")))])
    with pytest.raises(errors.WaitTimeout, match="not Ready after 0s"):
        script.run(_ops.wait_ready("wine", 0))


def test_waiting_for_a_deletion_ends_at_404():
    script = Script([("GET", "/deployment/wine", (200, dep("Deleting"))),
                     ("GET", "/deployment/wine", (404, {"message": "gone"}))])
    script.run(_ops.wait_gone("wine", 60))
    assert script.shown == ["wine: Deleting (1/1 replicas available)",
                            "Model deployment wine is gone"]


def test_a_local_model_directory_is_sent_as_an_absolute_file_uri(tmp_path, monkeypatch):
    (tmp_path / "models" / "wine").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert _ops.model_image("models/wine") == f"file://{(tmp_path / 'models/wine').resolve()}"
    assert _ops.model_image(Path("models/wine")).startswith("file:///")
    for uri in ("runs:/abc/model", "models:/wine/1", "s3://b/m", "registry.example/wine:1"):
        assert _ops.model_image(uri) == uri


def test_new_weights_keep_the_targets_order_and_the_rest_of_the_spec():
    current = Route({"id": "wine-ab", "spec": {
        "urlPrefix": "/custom/wine", "mirror": "wine-v2", "sticky": {"header": "x-user"},
        "modelDeployments": [{"mdName": "wine-v1", "weight": 90},
                             {"mdName": "wine-v2", "weight": 10}]}})
    updated = _ops.with_weights(current, {"wine-v2": 50, "wine-v1": 50})
    assert updated == {"kind": "ModelRoute", "id": "wine-ab", "spec": {
        "urlPrefix": "/custom/wine", "mirror": "wine-v2", "sticky": {"header": "x-user"},
        "modelDeployments": [{"mdName": "wine-v1", "weight": 50},
                             {"mdName": "wine-v2", "weight": 50}]}}
    grown = _ops.with_weights(current, {"wine-v1": 80, "wine-v3": 10})
    assert grown["spec"]["modelDeployments"] == [{"mdName": "wine-v1", "weight": 80},
                                                 {"mdName": "wine-v2", "weight": 10},
                                                 {"mdName": "wine-v3", "weight": 10}]


def test_feedback_is_one_call_per_request_id():
    pred = pd.DataFrame({"quality": [5.0, 6.0, 7.0], "request_id": ["r1", "r1", "r2"]})
    assert _ops.feedback_payloads(pred, {"truthful": 6}, "truthful") == [
        ("r1", {"truthful": 6}), ("r2", {"truthful": 6})]
    assert _ops.feedback_payloads(pred, pd.Series([5, 6, 7]), "truthful") == [
        ("r1", {"truthful": [5, 6]}), ("r2", {"truthful": 7})]
    assert _ops.feedback_payloads(pred["request_id"], [1, 2, 3], "label") == [
        ("r1", {"label": [1, 2]}), ("r2", {"label": 3})]
    assert _ops.feedback_payloads("r9", {"truthful": 1}, "truthful") == [("r9", {"truthful": 1})]
    with pytest.raises(ValueError, match="2 labels for 3 predicted rows"):
        _ops.feedback_payloads(pred, [1, 2], "truthful")


def test_feedback_needs_to_know_the_model():
    memory = _ops.Memory()
    script = Script([])
    with pytest.raises(ValueError, match="pass model= and version="):
        script.run(_ops.send_feedback(memory, "r1", {"truthful": 1}, None, None, "truthful"))
    memory.remember("r1", "wine", "1.0")
    script = Script([("POST", "/api/v1/feedback", (200, {"requestID": "r1"}))])
    assert script.run(_ops.send_feedback(memory, "r1", {"truthful": 1}, None, None,
                                         "truthful")) == [{"requestID": "r1"}]
    assert script.sent[0].headers == {"model-name": "wine", "model-version": "1.0",
                                      "request-id": "r1"}


def test_memory_of_predictions_is_bounded(monkeypatch):
    monkeypatch.setattr(_ops, "REMEMBERED_PREDICTIONS", 2)
    memory = _ops.Memory()
    for rid in ("a", "b", "c"):
        memory.remember(rid, "wine", "1.0")
    assert list(memory.predictions) == ["b", "c"]


def _jwt(claims: dict) -> str:
    import base64
    import json

    def part(doc: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


def test_revoking_a_token_names_it_by_its_jti_and_keeps_its_exp():
    body = _ops.revocation_body(None, None, None, _jwt({"jti": "t-1", "exp": 2e9}), None,
                                "leaked")
    assert body == {"jti": "t-1", "expiresAt": 2e9, "reason": "leaked"}
    script = Script([("POST", "/token/revocation", (201, {"id": 3, "jti": "t-1"}))])
    entry = script.run(_ops.revoke(body))
    assert entry.id == "3" and entry.jti == "t-1" and script.sent[0].json == body
    assert _ops.revocation_body(None, "alice", "2030-01-01T00:00:00Z", None, None, "") == {
        "sub": "alice", "before": "2030-01-01T00:00:00Z"}


@pytest.mark.parametrize(("args", "message"), [
    ((None, None, None, None), "exactly one"),
    (("a", "b", None, None), "exactly one"),
    (("a", None, None, _jwt({"jti": "x"})), "not several"),
    ((None, None, None, _jwt({"sub": "bob"})), "carries no jti"),
    ((None, None, None, "not-a-jwt"), "not a JWT"),
    ((None, None, None, "a.!!!.c"), "not a JWT"),
])
def test_a_revocation_must_name_one_thing(args, message):
    jti, sub, before, token = args
    with pytest.raises(ValueError, match=message):
        _ops.revocation_body(jti, sub, before, token, None, "")


def test_listing_and_taking_back_revocations():
    script = Script([("GET", "/token/revocation", (200, [{"id": 1, "sub": "bob",
                                                          "before": "2030-01-01T00:00:00Z"}])),
                     ("DELETE", "/token/revocation/1", (200, {"message": "deleted"}))])
    (entry,) = script.run(_ops.list_revocations())
    assert (entry.sub, entry.before, entry.jti) == ("bob", "2030-01-01T00:00:00Z", None)
    assert "bob" in str(entry) and "bob" in repr(entry)
    assert script.run(_ops.delete_revocation(1)) == "deleted"
