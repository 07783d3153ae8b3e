"""``Client`` and ``AsyncClient``: the whole SDK, one implementation under both.

Every method builds an operation (``_ops.py``) and hands it to ``_run``: the sync client runs
it to the end and returns the result, the async client returns a coroutine of the same
result. So ``mg.deploy(...)`` with a ``Client`` is ``await mg.deploy(...)`` with an
``AsyncClient``, with the same arguments, errors and progress display.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

from . import _ops, frames
from ._drive import run_async, run_sync
from ._steps import Op, RetryPolicy
from .objects import Deployment, Job, Quality, Revocation, Rollout, Route, Table
from .progress import SinkFactory, default_progress

DEFAULT_URL = "http://127.0.0.1:5080"
DEFAULT_TIMEOUT = 60.0
T = TypeVar("T")
H = TypeVar("H", httpx.Client, httpx.AsyncClient)


def default_url() -> str:
    """``$MLGATE_URL``, else ``http://127.0.0.1:5080`` (``mlgate up``'s default)."""
    return os.environ.get("MLGATE_URL") or DEFAULT_URL


def default_token() -> str:
    return os.environ.get("MLGATE_TOKEN", "")


class BaseClient(Generic[H]):
    """What :class:`Client` and :class:`AsyncClient` both do: every method below returns its
    result with a ``Client`` and a coroutine of it with an ``AsyncClient``. Management calls
    are on ``deployments`` (:class:`Deployments`), ``routes`` (:class:`Routes`), ``jobs``
    (:class:`Jobs`) and ``tokens`` (:class:`Tokens`: revocations)."""

    _http: H

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT, retries: int = 3,
                 progress: bool | SinkFactory = True,
                 headers: Mapping[str, str] | None = None, **httpx_options: Any) -> None:
        """Connect to mlgate at ``url`` (default ``$MLGATE_URL``) with bearer ``token``
        (default ``$MLGATE_TOKEN``).

        ``retries``: further attempts after a ``503``/``429`` answer with ``Retry-After`` or
        a connection that could not be made (with backoff). ``progress``: show waits
        (``wait=True``) — ``True`` picks Jupyter, terminal or plain lines; ``False`` shows
        nothing; or a factory of your own sinks. Other keyword arguments go to httpx.
        """
        self.url = (url or default_url()).rstrip("/")
        token = default_token() if token is None else token
        all_headers = {"Authorization": f"Bearer {token}"} if token else {}
        all_headers.update(headers or {})
        self._policy = RetryPolicy(retries=retries)
        self._progress: SinkFactory | None = (
            default_progress() if progress is True else None if progress is False else progress)
        self._memory = _ops.Memory()
        self._http = self._make_http(self.url, all_headers, timeout, httpx_options)
        self.deployments = Deployments(self)
        self.routes = Routes(self)
        self.jobs = Jobs(self)
        self.tokens = Tokens(self)

    def _make_http(self, url: str, headers: dict[str, str], timeout: float,
                   options: dict[str, Any]) -> H:
        raise NotImplementedError

    def _run(self, op: Op[T]) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"

    # -- the short ways ---------------------------------------------------------------------

    def deploy(self, model: str | Path, id: str, *, predictor: str = "odahu-ml-server",
               min_replicas: int = 1, max_replicas: int | None = None,
               role_name: str | None = None, quality: Mapping[str, Any] | None = None,
               resources: Mapping[str, Any] | None = None,
               annotations: Mapping[str, str] | None = None, wait: bool = True,
               timeout: float = 600.0) -> Deployment:
        """Deploy a model as ModelDeployment ``id``: create it, or update it when it exists
        with another spec; with ``wait``, follow it until Ready.

        ``model``: a local MLflow model directory (sent as ``file:///abs/dir``: mlgate must run
        on this machine), ``runs:/...`` or ``models:/...`` (mlgate's MLflow tracking server),
        or a container image (the Kubernetes runtime). Raises ``DeploymentFailed`` (with the
        predictor's reason) or ``WaitTimeout``.
        """
        body = _ops.deployment_body(id, _ops.model_image(model), predictor, min_replicas,
                                    max_replicas, {"roleName": role_name, "quality": quality,
                                                   "resources": resources,
                                                   "annotations": annotations})
        return self._run(_ops.apply_deployment(body, wait, timeout))

    def invoke(self, target: str, data: Any, *, route: bool = False,
               request_id: str | None = None, batch_size: int | None = None) -> Any:
        """Get predictions from deployment ``target`` (or route ``target`` with ``route=True``).

        ``data``: a pandas DataFrame, a list of row dicts, or an invoke body ``{"columns",
        "data"}``. A DataFrame comes back as a DataFrame of predictions on the same index with
        a ``request_id`` column (and ``.attrs`` naming the model, version and deployment that
        answered); other input gives the model's JSON answer. ``batch_size`` splits the rows
        into calls of at most that many (each with its own Request-ID); ``request_id`` sets
        the Request-ID of a single call. Triton deployments get a KServe v2 request.
        """
        dep, rt = (None, target) if route else (target, None)
        return self._run(_ops.invoke(self._memory, dep, rt, data, request_id, batch_size))

    def feedback(self, prediction: Any, payload: Any, *, model: str | None = None,
                 version: str | None = None, field: str = "truthful") -> list[dict[str, Any]]:
        """Send ground truth for predictions; returns the server's answers (one per call).

        ``prediction``: a Request-ID, or what ``invoke`` returned (its DataFrame or its
        ``request_id`` column). ``payload``: any JSON (sent once per Request-ID), or one label
        per predicted row (a list, array or Series), sent as ``{field: label}`` per call.
        Model name and version come from ``model``/``version``, else from the DataFrame, else
        from this client's memory of the calls it made.
        """
        return self._run(_ops.send_feedback(self._memory, prediction, payload, model, version,
                                            field))

    def invoke_raw(self, target: str, body: bytes, *, route: bool = False,
                   headers: Mapping[str, str] | None = None) -> httpx.Response:
        """Send ``body`` (JSON bytes) as it is — turned into a KServe v2 request for a Triton
        deployment when it is an ODAHU ``{"columns", "data"}`` body — and return the raw
        ``httpx.Response`` (its ``request-id``, ``model-name``, ... headers included)."""
        dep, rt = (None, target) if route else (target, None)
        return self._run(_ops.invoke_raw(self._memory, dep, rt, body, headers))

    def info(self, target: str, *, route: bool = False) -> dict[str, Any]:
        """The model's OpenAPI document (``/api/model/info``)."""
        dep, rt = (None, target) if route else (target, None)
        return self._run(_ops.model_info(self._memory, dep, rt))

    def records(self, model: str | None = None, *, kind: str = "request_response",
                version: str | None = None, since: str | None = None,
                until: str | None = None, limit: int | None = None) -> Any:
        """Stored records as a DataFrame: ``kind`` is ``request_response``, ``response_body``
        or ``feedback``; ``since``/``until`` are UTC dates or times (``2026-12-01``,
        ``2026-12-01T09:30``). Records still in a spool (the last second or so) are not in
        the bucket yet."""
        op = _ops.records(kind, model, version, since, until, limit)
        return self._run(_map(op, frames.records_frame))

    def quality(self, target: str, *, route: bool = False, since: str | None = None,
                until: str | None = None, window: str | None = None) -> Quality:
        """Live model quality of deployment ``target`` (or of each target of route ``target``
        with ``route=True``): labels credited to the bucket of their prediction.

        ``since``/``until``: UTC times (``2026-12-05T10:00``) or durations back from now
        (``6h``); ``window``: the bucket width (``1m``, ``15m``, ``1h``; default the
        deployment's ``spec.quality.window``). The result prints as a table;
        ``.frame()`` is the time series as a DataFrame, ``.totals`` the figures over the span.
        """
        return self._run(_ops.quality(target, route, since, until, window))

    def rollout(self, route_id: str) -> RolloutControl[H]:
        """The canary rollout of route ``route_id`` (its ``spec.analysis``): ``status()``,
        ``watch()``, and ``promote()``, ``abort()``, ``pause()``, ``resume()``. Nothing is
        sent until one of them is called::

            mg.rollout("wine").watch()      # follow it until Succeeded or Failed
        """
        return RolloutControl(self, route_id)

    def dataset(self, model: str, *, version: str | None = None,
                deployment: str | None = None, since: str | None = None,
                until: str | None = None, labelled_only: bool = False,
                task: str | None = None, prediction: str | None = None,
                label: str | None = None, format: str = "parquet") -> Any:
        """A training data set as a DataFrame: one row per predicted input row with
        ``request_id``, ``row``, ``model_name``, ``model_version``, ``deployment_id``, ``time``,
        the input features, the prediction, the label, ``feedback_time`` and the raw feedback
        (``GET /api/v1/dataset``, the export of ``mlgate dataset export``). ``task``,
        ``prediction`` and ``label`` override how predictions and labels are read."""
        op = _ops.dataset(model, version, deployment, since, until, labelled_only,
                          {"task": task, "prediction": prediction, "label": label}, format)
        return self._run(_map(op, lambda content: frames.dataset_frame(content, format)))


def _map(op: Op[Any], convert: Callable[[Any], T]) -> Op[T]:
    return convert((yield from op))


class Deployments(Generic[H]):
    """``client.deployments``: ModelDeployments through the management API."""

    def __init__(self, client: BaseClient[H]) -> None:
        self._client = client

    def list(self) -> Table[Deployment]:
        """Every deployment (a list that prints as a table)."""
        return self._client._run(_ops.list_deployments())

    def get(self, id: str) -> Deployment:
        """One deployment; ``NotFound`` if there is none."""
        return self._client._run(_ops.get_deployment(id))

    def create(self, manifest: Mapping[str, Any], *, wait: bool = False,
               timeout: float = 600.0) -> Deployment:
        """Create from a manifest (``{"kind": "ModelDeployment", "id", "spec"}``)."""
        return self._client._run(_ops.write_deployment(dict(manifest), True, wait, timeout))

    def update(self, manifest: Mapping[str, Any], *, wait: bool = False,
               timeout: float = 600.0) -> Deployment:
        """Replace a deployment's spec (its replicas roll to the new one)."""
        return self._client._run(_ops.write_deployment(dict(manifest), False, wait, timeout))

    def delete(self, id: str, *, wait: bool = False, timeout: float = 600.0) -> str:
        """Delete; with ``wait``, until it is gone. Returns the server's message."""
        return self._client._run(_ops.delete_deployment(id, wait, timeout))

    def wait(self, id: str, *, timeout: float = 600.0) -> Deployment:
        """Follow until Ready (``DeploymentFailed``, ``WaitTimeout`` otherwise)."""
        return self._client._run(_ops.wait_ready(id, timeout))

    def wait_gone(self, id: str, *, timeout: float = 600.0) -> None:
        """Follow a deleted deployment until the API no longer knows it."""
        return self._client._run(_ops.wait_gone(id, timeout))

    def default_route(self, id: str) -> Route:
        """The route ``/model/<id>`` every deployment gets."""
        return self._client._run(_ops.default_route(id))


class Jobs(Generic[H]):
    """``client.jobs``: InferenceJobs (a model over every object under a prefix)."""

    def __init__(self, client: BaseClient[H]) -> None:
        self._client = client

    def list(self) -> Table[Job]:
        """Every job, with its counts."""
        return self._client._run(_ops.list_jobs())

    def get(self, id: str) -> Job:
        """One job; ``NotFound`` if there is none."""
        return self._client._run(_ops.get_job(id))

    def create(self, manifest: Mapping[str, Any], *, wait: bool = False,
               timeout: float | None = None) -> Job:
        """Create from a manifest (``{"kind": "InferenceJob", "id", "spec"}``; local paths
        must be absolute); with ``wait``, follow it to its end (a progress bar) and return it
        as it ended (``job.state``, ``job.reason``; a Failed job is not an exception)."""
        return self._client._run(_ops.create_job(dict(manifest), wait, timeout))

    def resume(self, id: str, *, retry_errors: bool = False, wait: bool = False,
               timeout: float | None = None) -> Job:
        """Run an ended job again, skipping every object whose output exists; with
        ``retry_errors`` only the rows listed under ``_errors/``."""
        return self._client._run(_ops.resume_job(id, retry_errors, wait, timeout))

    def wait(self, id: str, *, timeout: float | None = None) -> Job:
        """Follow a job to its end; ``WaitTimeout`` after ``timeout`` seconds."""
        return self._client._run(_ops.wait_job(id, timeout))

    def delete(self, id: str) -> str:
        """Stop and delete a job (its outputs stay); the server's message."""
        return self._client._run(_ops.delete_job(id))


class Routes(Generic[H]):
    """``client.routes``: ModelRoutes (A/B, canary, mirror) through the management API."""

    def __init__(self, client: BaseClient[H]) -> None:
        self._client = client

    def list(self) -> Table[Route]:
        """Every route, default routes included."""
        return self._client._run(_ops.list_routes())

    def get(self, id: str) -> Route:
        """One route; ``NotFound`` if there is none."""
        return self._client._run(_ops.get_route(id))

    def create(self, id: str | Mapping[str, Any], url_prefix: str | None = None,
               targets: Mapping[str, int] | None = None, *, mirror: str | None = None,
               **spec: Any) -> Route:
        """``create("wine", "/custom/wine", {"wine-v1": 90, "wine-v2": 10})``, or
        ``create(manifest)``. Extra keyword arguments are spec fields (``sticky=...``)."""
        return self._client._run(_ops.write_route(
            _route_manifest(id, url_prefix, targets, mirror, spec), True))

    def update(self, id: str | Mapping[str, Any], url_prefix: str | None = None,
               targets: Mapping[str, int] | None = None, *, mirror: str | None = None,
               **spec: Any) -> Route:
        """Replace a route's spec; the same arguments as :meth:`create`."""
        return self._client._run(_ops.write_route(
            _route_manifest(id, url_prefix, targets, mirror, spec), False))

    def set_weights(self, id: str, weights: Mapping[str, int]) -> Route:
        """Change only the split, e.g. ``{"wine-v1": 90, "wine-v2": 10}``."""
        return self._client._run(_ops.set_weights(id, weights))

    def delete(self, id: str) -> str:
        """Delete a route (default routes go with their deployment); the server's message."""
        return self._client._run(_ops.delete_route(id))


class RolloutControl(Generic[H]):
    """``client.rollout(route_id)``: one route's canary rollout. Every method returns the
    rollout as it is after the call (:class:`~mlgate.objects.Rollout`); ``NotFound`` when the
    route has no ``spec.analysis``, ``Conflict`` when its phase does not allow the action."""

    def __init__(self, client: BaseClient[H], route_id: str) -> None:
        self._client = client
        self.route_id = route_id

    def status(self) -> Rollout:
        """Where the rollout is: phase, step, weights, failed checks, the last judgement."""
        return self._client._run(_ops.get_rollout(self.route_id))

    def watch(self, *, timeout: float | None = None) -> Rollout:
        """Follow the rollout until it is ``Succeeded`` or ``Failed`` (either is returned, not
        raised), showing the canary's weight and each change like the SDK's other waits;
        ``WaitTimeout`` after ``timeout`` seconds."""
        return self._client._run(_ops.watch_rollout(self.route_id, timeout))

    def promote(self) -> Rollout:
        """Give the canary 100 now (also after a Failed rollout)."""
        return self._client._run(_ops.rollout_action(self.route_id, "promote"))

    def abort(self) -> Rollout:
        """Back to stable 100 now; the rollout ends Failed."""
        return self._client._run(_ops.rollout_action(self.route_id, "abort"))

    def pause(self) -> Rollout:
        """Keep the weights, judge nothing, stop the deadline's clock."""
        return self._client._run(_ops.rollout_action(self.route_id, "pause"))

    def resume(self) -> Rollout:
        """Continue a paused rollout at its step."""
        return self._client._run(_ops.rollout_action(self.route_id, "resume"))

    def __repr__(self) -> str:
        return f"<RolloutControl {self.route_id!r}>"
class Tokens(Generic[H]):
    """``client.tokens``: revoke bearer tokens (effective on every gateway process within a
    second, kept across restarts)."""

    def __init__(self, client: BaseClient[H]) -> None:
        self._client = client

    def revoke(self, jti: str | None = None, *, sub: str | None = None,
               before: str | float | None = None, token: str | None = None,
               expires_at: str | float | None = None, reason: str = "") -> Revocation:
        """Revoke one token — by its ``jti``, or give the ``token`` itself — or every token
        of subject ``sub`` issued before ``before`` (RFC 3339 or epoch seconds; default now).
        ``expires_at``: when the entry may be forgotten (a token's ``exp``; taken from
        ``token``). Revoking the same jti or sub again replaces the entry."""
        body = _ops.revocation_body(jti, sub, before, token, expires_at, reason)
        return self._client._run(_ops.revoke(body))

    def revocations(self) -> Table[Revocation]:
        """Every revocation in force."""
        return self._client._run(_ops.list_revocations())

    def delete_revocation(self, id: int | str) -> str:
        """Take a revocation back (its tokens work again while they are valid)."""
        return self._client._run(_ops.delete_revocation(id))


def _route_manifest(id: str | Mapping[str, Any], url_prefix: str | None,
                    targets: Mapping[str, int] | None, mirror: str | None,
                    spec: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(id, Mapping):
        return dict(id)
    if url_prefix is None or not targets:
        raise TypeError("a route needs url_prefix and targets, or a whole manifest")
    return _ops.route_body(id, url_prefix, targets, {"mirror": mirror, **spec})


class Client(BaseClient[httpx.Client]):
    """The synchronous client. Use it as a context manager, or call ``close()``."""

    def _make_http(self, url: str, headers: dict[str, str], timeout: float,
                   options: dict[str, Any]) -> httpx.Client:
        return httpx.Client(base_url=url, headers=headers, timeout=timeout, **options)

    def _run(self, op: Op[T]) -> T:
        return run_sync(op, self._http, self._policy, self._progress)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(BaseClient[httpx.AsyncClient]):
    """The asynchronous client: every method of :class:`Client`, awaited. Use it as an async
    context manager, or call ``await aclose()``."""

    def _make_http(self, url: str, headers: dict[str, str], timeout: float,
                   options: dict[str, Any]) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout, **options)

    def _run(self, op: Op[T]) -> Any:
        return run_async(op, self._http, self._policy, self._progress)

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
