"""Every SDK call as an operation: a generator of steps (``_steps.py``), written once for the
sync and the async client. Nothing here sends, sleeps or prints; the drivers do."""

from __future__ import annotations

import base64
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from . import frames
from ._steps import Call, Op, Progress, Sleep
from .errors import DeploymentFailed, NotFound, WaitTimeout
from .objects import Deployment, Job, Quality, Revocation, Rollout, Route, Table, job_figures
from .v2 import TRITON_PREDICTOR, InvokeRequestError, build_invoke_request, is_v2_body

API = "/api/v1"
DEPLOYMENTS = f"{API}/model/deployment"
ROUTES = f"{API}/model/route"
POLL_INTERVAL = 0.5
REVOCATIONS = f"{API}/token/revocation"
REMEMBERED_PREDICTIONS = 100_000
ODAHU_PREDICTOR = "odahu-ml-server"


@dataclass
class Target:
    """Where a deployment or route is called and what it speaks."""

    url: str
    predictor: str
    model_name: str = ""
    openapi: dict[str, Any] | None = None


@dataclass
class Memory:
    """What a client remembers between calls: invoke targets, and which model answered each
    Request-ID it got (so ``feedback`` needs only the id)."""

    targets: dict[tuple[str, str], Target] = field(default_factory=dict)
    predictions: OrderedDict[str, tuple[str, str]] = field(default_factory=OrderedDict)

    def remember(self, request_id: str, model_name: str, model_version: str) -> None:
        if not (request_id and model_name and model_version):
            return
        self.predictions[request_id] = (model_name, model_version)
        self.predictions.move_to_end(request_id)
        while len(self.predictions) > REMEMBERED_PREDICTIONS:
            self.predictions.popitem(last=False)


# -- deployments -----------------------------------------------------------------------------


def model_image(model: str | Path) -> str:
    """A local MLflow model directory becomes ``file:///abs/dir`` (mlgate on this machine reads
    it); URIs (``runs:/``, ``models:/``, ``s3://``, ``file://``) and images stay as given."""
    text = str(model)
    if "://" in text or text.startswith(("runs:/", "models:/")):
        return text
    path = Path(text).expanduser()
    if path.exists():
        return "file://" + str(path.resolve())
    return text


def deployment_body(deployment_id: str, image: str, predictor: str, min_replicas: int,
                    max_replicas: int | None, extra: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "image": image,
        "predictor": predictor,
        "minReplicas": min_replicas,
        "maxReplicas": max(1, min_replicas) if max_replicas is None else max_replicas,
    }
    spec.update({k: v for k, v in extra.items() if v is not None})
    return {"kind": "ModelDeployment", "id": deployment_id, "spec": spec}


def list_deployments() -> Op[Table[Deployment]]:
    resp = yield Call("GET", DEPLOYMENTS)
    return Table(Deployment(d) for d in resp.json())


def get_deployment(deployment_id: str) -> Op[Deployment]:
    resp = yield Call("GET", f"{DEPLOYMENTS}/{deployment_id}")
    return Deployment(resp.json())


def write_deployment(body: dict[str, Any], create: bool, wait: bool,
                     timeout: float) -> Op[Deployment]:
    resp = yield Call("POST" if create else "PUT", DEPLOYMENTS, json=body)
    dep = Deployment(resp.json())
    if wait:
        dep = yield from wait_ready(dep.id, timeout)
    return dep


def apply_deployment(body: dict[str, Any], wait: bool, timeout: float) -> Op[Deployment]:
    """Create, or update when it exists with another spec, or leave it as it is."""
    resp = yield Call("GET", f"{DEPLOYMENTS}/{body['id']}", ok=(404,))
    if resp.status_code == 404:
        return (yield from write_deployment(body, True, wait, timeout))
    current = Deployment(resp.json())
    if {**current.spec, **body["spec"]} != current.spec:
        return (yield from write_deployment(body, False, wait, timeout))
    if wait:
        return (yield from wait_ready(current.id, timeout))
    return current


def delete_deployment(deployment_id: str, wait: bool, timeout: float) -> Op[str]:
    resp = yield Call("DELETE", f"{DEPLOYMENTS}/{deployment_id}")
    message = resp.json().get("message", "")
    if wait:
        yield from wait_gone(deployment_id, timeout)
    return message


def wait_ready(deployment_id: str, timeout: float) -> Op[Deployment]:
    """Follow a deployment until Ready; raise ``DeploymentFailed`` or ``WaitTimeout``."""
    deadline = time.monotonic() + timeout
    while True:
        dep = yield from get_deployment(deployment_id)
        if dep.state == "Ready":
            yield Progress(dep.describe(), done=True)
            return dep
        if dep.state == "Failed":
            yield Progress(dep.describe(), done=True)
            raise DeploymentFailed(deployment_id, dep.reason or "no reason given")
        yield Progress(dep.describe())
        if time.monotonic() > deadline:
            raise WaitTimeout(f"model deployment {deployment_id} is not Ready after "
                              f"{timeout:g}s (state {dep.state})")
        yield Sleep(POLL_INTERVAL)


def wait_gone(deployment_id: str, timeout: float) -> Op[None]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            dep = yield from get_deployment(deployment_id)
        except NotFound:
            yield Progress(f"Model deployment {deployment_id} is gone", done=True)
            return
        yield Progress(dep.describe())
        if time.monotonic() > deadline:
            raise WaitTimeout(f"model deployment {deployment_id} still exists after {timeout:g}s")
        yield Sleep(POLL_INTERVAL)


# -- routes ----------------------------------------------------------------------------------


def list_routes() -> Op[Table[Route]]:
    resp = yield Call("GET", ROUTES)
    return Table(Route(r) for r in resp.json())


def get_route(route_id: str) -> Op[Route]:
    resp = yield Call("GET", f"{ROUTES}/{route_id}")
    return Route(resp.json())


def default_route(deployment_id: str) -> Op[Route]:
    resp = yield Call("GET", f"{DEPLOYMENTS}/{deployment_id}/default-route")
    return Route(resp.json())


def write_route(body: dict[str, Any], create: bool) -> Op[Route]:
    """POST or PUT. A PUT replaces the whole spec: a body without ``spec.analysis`` removes it
    (the API keeps it for clients that cannot send it, such as odahuflowctl)."""
    if not create and isinstance(body.get("spec"), Mapping) and "analysis" not in body["spec"]:
        body = {**body, "spec": {**body["spec"], "analysis": None}}
    resp = yield Call("POST" if create else "PUT", ROUTES, json=body)
    return Route(resp.json())


def route_body(route_id: str, url_prefix: str, targets: Mapping[str, int],
               extra: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "urlPrefix": url_prefix,
        "modelDeployments": [{"mdName": k, "weight": int(v)} for k, v in targets.items()],
    }
    spec.update({k: v for k, v in extra.items() if v is not None})
    return {"kind": "ModelRoute", "id": route_id, "spec": spec}


def with_weights(route: Route, weights: Mapping[str, int]) -> dict[str, Any]:
    """The route's writable part with new weights; targets keep their order (so sticky users
    move only as much as the weights do), new names are appended. The API checks the sum."""
    spec = dict(route.spec)
    given = dict(weights)
    targets = [dict(t, weight=int(given.pop(t["mdName"], t.get("weight", 100))))
               for t in spec.get("modelDeployments", [])]
    targets += [{"mdName": name, "weight": int(w)} for name, w in given.items()]
    spec["modelDeployments"] = targets
    return {"kind": "ModelRoute", "id": route.id, "spec": spec}


def set_weights(route_id: str, weights: Mapping[str, int]) -> Op[Route]:
    route = yield from get_route(route_id)
    if route.spec.get("analysis") is not None:
        raise ValueError(f"the weights of model route {route_id} belong to its canary rollout "
                         "(spec.analysis): promote, abort or pause the rollout, or remove "
                         "spec.analysis first")
    return (yield from write_route(with_weights(route, weights), False))


def delete_route(route_id: str) -> Op[str]:
    resp = yield Call("DELETE", f"{ROUTES}/{route_id}")
    return resp.json().get("message", "")


# -- canary rollouts -------------------------------------------------------------------------

ROLLOUT_ACTIONS = ("promote", "abort", "pause", "resume")
ROLLOUT_PROGRESS_EVERY = 5.0


def get_rollout(route_id: str) -> Op[Rollout]:
    resp = yield Call("GET", f"{ROUTES}/{route_id}/rollout")
    return Rollout(resp.json())


def rollout_action(route_id: str, action: str) -> Op[Rollout]:
    if action not in ROLLOUT_ACTIONS:
        raise ValueError(f"unknown rollout action {action!r}; one of "
                         f"{', '.join(ROLLOUT_ACTIONS)}")
    resp = yield Call("POST", f"{ROUTES}/{route_id}/rollout/{action}")
    return Rollout(resp.json())


def watch_rollout(route_id: str, timeout: float | None) -> Op[Rollout]:
    """Follow a rollout until it is Succeeded or Failed (either is returned, not raised);
    ``WaitTimeout`` when ``timeout`` seconds pass first. Progress: the canary's weight of 100,
    a line per phase or step (or every few seconds while the figures move)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        rollout = yield from get_rollout(route_id)
        yield Progress(rollout.describe(), done=rollout.finished,
                       completed=rollout.canary_weight, total=100,
                       state=f"{rollout.phase}:{rollout.step}:{rollout.failed_checks}",
                       throttle=ROLLOUT_PROGRESS_EVERY, detail=rollout.raw)
        if rollout.finished:
            return rollout
        if deadline is not None and time.monotonic() > deadline:
            raise WaitTimeout(f"the rollout of model route {route_id} has not finished after "
                              f"{timeout:g}s ({rollout.phase}, step {rollout.step} of "
                              f"{rollout.steps})")
        yield Sleep(POLL_INTERVAL)


# -- inference jobs --------------------------------------------------------------------------

JOBS = f"{API}/batch/job"
JOB_PROGRESS_EVERY = 5.0


def list_jobs() -> Op[Table[Job]]:
    resp = yield Call("GET", JOBS)
    return Table(Job(j) for j in resp.json())


def get_job(job_id: str) -> Op[Job]:
    resp = yield Call("GET", f"{JOBS}/{job_id}")
    return Job(resp.json())


def create_job(manifest: dict[str, Any], wait: bool, timeout: float | None) -> Op[Job]:
    resp = yield Call("POST", JOBS, json=manifest)
    job = Job(resp.json())
    if wait:
        job = yield from wait_job(job.id, timeout)
    return job


def resume_job(job_id: str, retry_errors: bool, wait: bool, timeout: float | None) -> Op[Job]:
    resp = yield Call("POST", f"{JOBS}/{job_id}/resume", json={"retryErrors": retry_errors})
    job = Job(resp.json())
    if wait:
        job = yield from wait_job(job.id, timeout)
    return job


def delete_job(job_id: str) -> Op[str]:
    resp = yield Call("DELETE", f"{JOBS}/{job_id}")
    return resp.json().get("message", "")


def wait_job(job_id: str, timeout: float | None) -> Op[Job]:
    """Follow a job to its end (whatever the end: a Failed job is returned, not raised);
    ``WaitTimeout`` when ``timeout`` seconds pass first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        job = yield from get_job(job_id)
        f = job_figures(job.raw)
        yield Progress(job.describe(), done=job.ended, completed=f["done"],
                       total=f["total"], state=job.state, throttle=JOB_PROGRESS_EVERY)
        if job.ended:
            return job
        if deadline is not None and time.monotonic() > deadline:
            raise WaitTimeout(f"inference job {job_id} has not ended after {timeout:g}s "
                              f"(state {job.state})")
        yield Sleep(POLL_INTERVAL)


# -- models ----------------------------------------------------------------------------------


def target(memory: Memory, deployment: str | None, route: str | None) -> Op[Target]:
    """A deployment's default route, or a route: its edge URL and its predictor (a route's
    targets must agree: one request body cannot suit two protocols)."""
    key = ("deployment", deployment) if deployment else ("route", route or "")
    found = memory.targets.get(key)
    if found is not None:
        return found
    if deployment:
        r = yield from default_route(deployment)
        ids = [deployment]
    else:
        r = yield from get_route(route or "")
        ids = list(r.targets)
    deps = []
    for dep_id in ids:
        deps.append((yield from get_deployment(dep_id)))
    predictors = {d.predictor for d in deps}
    if len(predictors) > 1:
        raise ValueError(f"route {route} mixes predictors ({', '.join(sorted(predictors))}): "
                      "invoke one deployment")
    predictor = predictors.pop() if predictors else ODAHU_PREDICTOR
    names = {d.model_name for d in deps if d.model_name}
    if predictor == TRITON_PREDICTOR and len(names) > 1:
        raise ValueError(f"route {route} serves different Triton models "
                      f"({', '.join(sorted(names))}): invoke one deployment")
    found = Target(r.edge_url, predictor, names.pop() if names else "")
    if not found.model_name and predictor == TRITON_PREDICTOR:
        return found  # not ready yet: ask again next time
    memory.targets[key] = found
    return found


def model_info(memory: Memory, deployment: str | None, route: str | None) -> Op[Any]:
    t = yield from target(memory, deployment, route)
    resp = yield Call("GET", f"{t.url}/api/model/info")
    return resp.json()


def invoke_raw(memory: Memory, deployment: str | None, route: str | None, body: bytes,
               headers: Mapping[str, str] | None = None) -> Op[httpx.Response]:
    """One call with ``body`` as the predictor expects it (a v2 body for Triton, made from an
    ODAHU body when needed); the raw answer."""
    t = yield from target(memory, deployment, route)
    openapi = None
    if t.predictor == TRITON_PREDICTOR:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"the request body is not JSON: {exc}") from None
        if not is_v2_body(payload):
            if t.openapi is None:
                t.openapi = (yield Call("GET", f"{t.url}/api/model/info")).json()
            openapi = t.openapi
    try:
        req = build_invoke_request(t.predictor, body, model_name=t.model_name, openapi=openapi)
    except InvokeRequestError as exc:  # a ValueError: what was given cannot be sent
        raise ValueError(str(exc)) from None
    resp = yield Call("POST", f"{t.url}{req.path}", content=req.body,
                      headers={**req.headers, **(headers or {})})
    memory.remember(resp.headers.get("request-id", ""), resp.headers.get("model-name", ""),
                    resp.headers.get("model-version", ""))
    return resp


def invoke(memory: Memory, deployment: str | None, route: str | None, data: Any,
           request_id: str | None, batch_size: int | None) -> Op[Any]:
    """Rows in, predictions out: a DataFrame when a DataFrame came in (on its index, with a
    ``request_id`` column), else the model's JSON answer (one call) or a list of them."""
    body = frames.invoke_body(data)
    calls = frames.split_body(body, batch_size)
    if request_id and len(calls) > 1:
        raise ValueError("request_id names one call; with batch_size each call gets its own")
    parts: list[tuple[Any, str]] = []
    served: dict[str, str] = {}
    for i, part in enumerate(calls):
        headers = {"Request-ID": request_id} if request_id else None
        resp = yield from invoke_raw(memory, deployment, route, orjson.dumps(part), headers)
        parts.append((resp.json(), resp.headers.get("request-id", "")))
        if i == 0:
            served = {k: resp.headers.get(h, "") for k, h in (
                ("model_name", "model-name"), ("model_version", "model-version"),
                ("deployment", "x-mlgate-target"))}
    if not frames.is_frame(data):
        answers = [a for a, _ in parts]
        return answers[0] if len(answers) == 1 else answers
    attrs = {**served, "deployment": served.get("deployment") or deployment or "",
             "route": route or "", "request_ids": [rid for _, rid in parts]}
    return frames.prediction_frame(parts, data.index, attrs)


# -- feedback and records --------------------------------------------------------------------


def request_ids_of(prediction: Any) -> list[str]:
    """The distinct Request-IDs of a request id, a list of them, or ``invoke``'s DataFrame (or
    its ``request_id`` column), in order of first appearance."""
    if isinstance(prediction, str):
        return [prediction]
    if frames.is_frame(prediction):
        prediction = prediction[frames.REQUEST_ID]
    values = prediction.tolist() if hasattr(prediction, "tolist") else list(prediction)
    return list(dict.fromkeys(str(v) for v in values))


def feedback_payloads(prediction: Any, payload: Any, field_name: str) -> list[tuple[str, Any]]:
    """``(request id, JSON)`` per call. A dict is sent as it is for each id; a sequence of
    labels, one per predicted row, is split by the rows' Request-IDs into
    ``{field_name: label}`` (one row) or ``{field_name: [labels...]}``."""
    ids = request_ids_of(prediction)
    if isinstance(payload, Mapping) or not _is_labels(payload):
        return [(rid, payload) for rid in ids]
    labels = [frames.json_value(v) for v in (payload.tolist() if hasattr(payload, "tolist")
                                              else list(payload))]
    if isinstance(prediction, str):
        rows = [prediction] * len(labels)
    else:
        column = prediction[frames.REQUEST_ID] if frames.is_frame(prediction) else prediction
        rows = [str(v) for v in (column.tolist() if hasattr(column, "tolist") else column)]
    if len(rows) != len(labels):
        raise ValueError(f"{len(labels)} labels for {len(rows)} predicted rows")
    grouped: dict[str, list[Any]] = {}
    for rid, label in zip(rows, labels, strict=True):
        grouped.setdefault(rid, []).append(label)
    return [(rid, {field_name: values[0] if len(values) == 1 else values})
            for rid, values in grouped.items()]


def _is_labels(payload: Any) -> bool:
    return hasattr(payload, "tolist") or (isinstance(payload, list | tuple))


def send_feedback(memory: Memory, prediction: Any, payload: Any, model: str | None,
                  version: str | None, field_name: str) -> Op[list[dict[str, Any]]]:
    """``POST /api/v1/feedback`` once per Request-ID; model name and version from the
    arguments, else from the DataFrame's ``attrs``, else from this client's memory."""
    attrs = getattr(prediction, "attrs", None) or {}
    answers = []
    for rid, body in feedback_payloads(prediction, payload, field_name):
        name, ver = model or attrs.get("model_name"), version or attrs.get("model_version")
        if not (name and ver):
            name, ver = memory.predictions.get(rid, (name, ver))
        if not (name and ver):
            raise ValueError(f"which model answered request {rid!r} is unknown to this client: "
                             "pass model= and version=")
        resp = yield Call("POST", f"{API}/feedback", json=body, headers={
            "model-name": str(name), "model-version": str(ver), "request-id": rid})
        answers.append(resp.json())
    return answers


def records(kind: str, model: str | None, version: str | None, since: str | None,
            until: str | None, limit: int | None) -> Op[list[dict[str, Any]]]:
    params = {k: v for k, v in (("kind", kind), ("model", model), ("version", version),
                                ("since", since), ("until", until), ("limit", limit))
              if v is not None}
    resp = yield Call("GET", f"{API}/records", params=params)
    return [orjson.loads(line) for line in resp.content.splitlines() if line.strip()]



# -- token revocations -----------------------------------------------------------------------


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT, read without checking its signature (only to name it: the
    server decides what the token is worth)."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT: expected three dot-separated parts")
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise ValueError("not a JWT: its payload is not base64url JSON") from None
    if not isinstance(claims, dict):
        raise ValueError("not a JWT: its payload is not a JSON object")
    return claims


def revocation_body(jti: str | None, sub: str | None, before: str | float | None,
                    token: str | None, expires_at: str | float | None,
                    reason: str) -> dict[str, Any]:
    """What ``POST /api/v1/token/revocation`` takes. ``token``: revoke that token, by the
    ``jti`` it carries (its ``exp`` tells when the entry may be forgotten)."""
    if token is not None:
        if jti is not None or sub is not None:
            raise ValueError("give a token, a jti or a sub, not several")
        claims = token_claims(token)
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise ValueError("this token carries no jti: revoke its subject's tokens "
                             f"(sub={claims.get('sub')!r}) instead")
        exp = claims.get("exp")
        if expires_at is None and isinstance(exp, int | float):
            expires_at = exp
    if (jti is None) == (sub is None):
        raise ValueError("give exactly one of a token, a jti or a sub")
    body: dict[str, Any] = {"jti": jti} if jti is not None else {"sub": sub}
    if before is not None:
        body["before"] = before
    if expires_at is not None:
        body["expiresAt"] = expires_at
    if reason:
        body["reason"] = reason
    return body


def revoke(body: dict[str, Any]) -> Op[Revocation]:
    resp = yield Call("POST", REVOCATIONS, json=body)
    return Revocation(resp.json())


def list_revocations() -> Op[Table[Revocation]]:
    resp = yield Call("GET", REVOCATIONS)
    return Table(Revocation(r) for r in resp.json())


def delete_revocation(revocation_id: int | str) -> Op[str]:
    resp = yield Call("DELETE", f"{REVOCATIONS}/{revocation_id}")
    return resp.json().get("message", "")


# -- quality and data sets -------------------------------------------------------------------


def quality(target_id: str, route: bool, since: str | None, until: str | None,
            window: str | None) -> Op[Quality]:
    kind = "route" if route else "deployment"
    params = {k: v for k, v in (("since", since), ("until", until), ("window", window)) if v}
    resp = yield Call("GET", f"{API}/model/{kind}/{target_id}/quality", params=params)
    return Quality(resp.json())


def dataset(model: str, version: str | None, deployment: str | None, since: str | None,
            until: str | None, labelled_only: bool, extra: Mapping[str, str | None],
            fmt: str) -> Op[bytes]:
    """The data set as one Parquet (or JSON Lines) file's bytes."""
    params: dict[str, str] = {"model": model, "format": fmt,
                              "labelled_only": "true" if labelled_only else "false"}
    params.update({k: v for k, v in (("version", version), ("deployment", deployment),
                                     ("since", since), ("until", until), *extra.items()) if v})
    resp = yield Call("GET", f"{API}/dataset", params=params)
    return resp.content
