"""The only module that talks to the Kubernetes API (through lightkube's async client).

Everything else in mlgate handles Kubernetes objects as plain dicts; this module turns
them into requests and answers back into dicts, and converts lightkube's and httpx's
errors at the boundary into a small tree (the cause is kept), whose leaves are also
the runtime's two kinds of trouble (:mod:`deploy.control.runtime`):

    KubeError                  any failure talking to the API
    ├── KubeConfigError        no usable kubeconfig / in-cluster service account (GiveUp)
    ├── KubeUnavailable        retry later: cannot connect, timed out, 5xx, 429 (RetryLater)
    └── KubeRejected           give up: the API refused the request (4xx), e.g. an
                               invalid object, Forbidden, a missing namespace or CRD (GiveUp)

Writes are server-side apply (``PATCH`` ``application/apply-patch+yaml``, field manager
``mlgate``, forced: mlgate owns what it applies). Reads are ``watch``: a LIST, then a
WATCH from the list's resourceVersion, resumed from the last event seen when the stream
ends or breaks, re-listed after ``410 Gone`` or when the API could not be reached; the
consumer receives a full ``SYNC`` snapshot whenever the client (re)lists, so it never
misses a deletion that happened while it was away.

lightkube was chosen over kubernetes_asyncio: server-side apply and watch are first-class
calls, one generic API covers built-in kinds and KEDA's ScaledObject alike, and it is a
small dependency (kubernetes_asyncio generates a method per kind and verb).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
from lightkube import ApiError, AsyncClient, ConfigError, KubeConfig
from lightkube.generic_resource import GenericNamespacedResource, create_api_info
from lightkube.types import CascadeType, OnErrorAction, OnErrorResult, PatchType

from deploy.config import KubernetesSettings
from deploy.control.runtime import GiveUp, RetryLater, RuntimeProblem
from deploy.k8s.manifests import FIELD_MANAGER, Manifest

log = logging.getLogger("mlgate.kubernetes")

Kind = tuple[str, str]  # (apiVersion, kind)
POD: Kind = ("v1", "Pod")
EVENT: Kind = ("v1", "Event")



def _resource_class(group: str, version: str, kind: str, plural: str) -> type:
    """A lightkube resource whose objects are plain dicts (no model, no strict decoding).

    Not put in lightkube's global registry, so nothing else in the process is affected.
    """
    return type(kind, (GenericNamespacedResource,),
                {"_api_info": create_api_info(group, version, kind, plural)})


RESOURCES: dict[Kind, type] = {
    ("apps/v1", "Deployment"): _resource_class("apps", "v1", "Deployment", "deployments"),
    ("v1", "Service"): _resource_class("", "v1", "Service", "services"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): _resource_class(
        "autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ("policy/v1", "PodDisruptionBudget"): _resource_class(
        "policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    ("keda.sh/v1alpha1", "ScaledObject"): _resource_class(
        "keda.sh", "v1alpha1", "ScaledObject", "scaledobjects"),
    ("batch/v1", "Job"): _resource_class("batch", "v1", "Job", "jobs"),
    ("v1", "Secret"): _resource_class("", "v1", "Secret", "secrets"),
    POD: _resource_class("", "v1", "Pod", "pods"),
    EVENT: _resource_class("", "v1", "Event", "events"),
}

WATCH_SERVER_TIMEOUT = 290  # seconds; the API closes the stream, the client resumes it
MAX_BACKOFF = 30.0


class KubeError(RuntimeProblem):
    """A request to the Kubernetes API failed; ``code`` is the HTTP status when there was one."""

    def __init__(self, message: str, code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason


class KubeConfigError(KubeError, GiveUp):
    pass


class KubeUnavailable(KubeError, RetryLater):
    pass


class KubeRejected(KubeError, GiveUp):
    pass


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """``SYNC`` carries every object that exists (after a (re)list); others carry one object."""

    type: str
    objects: list[Manifest]


def _error(exc: Exception, what: str) -> KubeError:
    if isinstance(exc, ApiError):
        status = exc.status
        code = status.code or 0
        message = f"{what}: {status.message or status.reason or code}"
        cls = KubeUnavailable if code >= 500 or code == 429 else KubeRejected
        return cls(message, code, status.reason or "")
    if isinstance(exc, httpx2.HTTPStatusError):
        code = exc.response.status_code
        cls = KubeUnavailable if code >= 500 or code == 429 else KubeRejected
        try:
            body = exc.response.json()
        except ValueError:
            body = {}
        detail = body.get("message") if isinstance(body, dict) else None
        return cls(f"{what}: {detail or f'HTTP {code}'}", code)
    return KubeUnavailable(f"{what}: {exc.__class__.__name__}: {exc}")


def _on_watch_error(exc: Exception, count: int) -> OnErrorResult:
    """Inside a watch: API errors (410 Gone, ...) end it for a re-list; a broken stream resumes."""
    if isinstance(exc, ApiError):
        return OnErrorResult(OnErrorAction.RAISE)
    delay = min(0.5 * 2 ** (count - 1), MAX_BACKOFF)
    log.warning("watch stream broke (%s); resuming in %.1fs", exc.__class__.__name__, delay)
    return OnErrorResult(OnErrorAction.RETRY, sleep=delay)


def load_config(settings: KubernetesSettings) -> KubeConfig:
    """``kubernetes.kubeconfig`` when set, else in-cluster, else ``$KUBECONFIG``/~/.kube/config."""
    try:
        if settings.kubeconfig:
            config = KubeConfig.from_file(settings.kubeconfig)
        else:
            config = KubeConfig.from_env()
        config.get(settings.context)  # fail now on a missing context, not at the first call
        return config
    except (ConfigError, OSError, KeyError, ValueError) as exc:
        raise KubeConfigError(f"cannot load the Kubernetes configuration: {exc}") from exc


def _resource(kind: Kind) -> type:
    try:
        return RESOURCES[kind]
    except KeyError:
        raise KubeRejected(f"mlgate does not manage {kind[1]} ({kind[0]})") from None


def _as_dict(obj: Any, kind: Kind) -> Manifest:
    data = dict(obj)  # list items come without apiVersion and kind
    data["apiVersion"], data["kind"] = kind
    return data


class KubeClient:
    """Namespaced access to the objects mlgate manages; create inside the running loop."""

    def __init__(self, settings: KubernetesSettings) -> None:
        self.settings = settings
        self.namespace = settings.namespace
        self._client: AsyncClient | None = None

    async def start(self) -> None:
        logging.getLogger("httpx2").setLevel(logging.WARNING)  # one line per API call otherwise
        config = load_config(self.settings)
        try:
            self._client = AsyncClient(
                config.get(self.settings.context), namespace=self.namespace,
                field_manager=FIELD_MANAGER, timeout=httpx2.Timeout(self.settings.api_timeout))
        except (ConfigError, AssertionError, OSError) as exc:
            raise KubeConfigError(f"cannot use the Kubernetes configuration: {exc}") from exc

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    @property
    def api(self) -> AsyncClient:
        assert self._client is not None, "KubeClient.start() was not awaited"
        return self._client

    async def apply(self, obj: Manifest) -> Manifest:
        """Server-side apply of ``obj`` (field manager ``mlgate``, forced); the stored object."""
        kind = (obj["apiVersion"], obj["kind"])
        name = obj["metadata"]["name"]
        try:
            stored = await self.api.patch(
                _resource(kind), name, obj, namespace=self.namespace,
                patch_type=PatchType.APPLY, field_manager=FIELD_MANAGER, force=True)
        except (ApiError, httpx2.HTTPError) as exc:
            raise _error(exc, f"applying {kind[1]}/{name}") from exc
        return _as_dict(stored, kind)

    async def list(self, kind: Kind, labels: Mapping[str, str] | None = None,
                   fields: Mapping[str, str] | None = None) -> tuple[list[Manifest], str]:
        """Matching objects and the list's resourceVersion (where a watch resumes)."""
        try:
            found = self.api.list(_resource(kind), namespace=self.namespace,
                                  labels=dict(labels) if labels else None,
                                  fields=dict(fields) if fields else None)
            items = [_as_dict(o, kind) async for o in found]
            return items, found.resourceVersion
        except (ApiError, httpx2.HTTPError) as exc:
            raise _error(exc, f"listing {kind[1]}") from exc

    async def delete(self, kind: Kind, name: str) -> bool:
        """Delete one object, dependents in the background; False when it was already gone."""
        try:
            await self.api.delete(_resource(kind), name, namespace=self.namespace,
                                  cascade=CascadeType.BACKGROUND)
        except ApiError as exc:
            if exc.status.code == 404:
                return False
            raise _error(exc, f"deleting {kind[1]}/{name}") from exc
        except httpx2.HTTPError as exc:
            raise _error(exc, f"deleting {kind[1]}/{name}") from exc
        return True

    async def watch(self, kind: Kind, labels: Mapping[str, str] | None = None,
                    fields: Mapping[str, str] | None = None) -> AsyncIterator[WatchEvent]:
        """LIST then WATCH forever: a ``SYNC`` snapshot after each (re)list, then changes."""
        backoff = 0.5
        while True:
            try:
                items, version = await self.list(kind, labels, fields)
            except KubeError as exc:
                log.warning("%s; listing again in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                continue
            yield WatchEvent("SYNC", items)
            backoff = 0.5
            try:
                stream = self.api.watch(
                    _resource(kind), namespace=self.namespace,
                    labels=dict(labels) if labels else None,
                    fields=dict(fields) if fields else None,
                    resource_version=version, server_timeout=WATCH_SERVER_TIMEOUT,
                    on_error=_on_watch_error)
                async with contextlib.aclosing(stream):
                    async for event_type, obj in stream:
                        if event_type in ("ADDED", "MODIFIED", "DELETED"):
                            yield WatchEvent(event_type, [_as_dict(obj, kind)])
            except ApiError as exc:
                if exc.status.code != 410:
                    log.warning("watching %s: %s; listing again", kind[1], exc.status.message)
                    await asyncio.sleep(backoff)
            except httpx2.HTTPError as exc:
                log.warning("watching %s: %s; listing again in %.1fs", kind[1], exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception:  # an undecodable event must not end the watch for good
                log.exception("watching %s failed; listing again in %.1fs", kind[1], backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
