"""A stand-in Kubernetes API server for tests: the real REST paths, in memory, on 127.0.0.1.

It runs in a thread of its own (its own event loop), so sync tests, async tests and a
separate ``mlgate up`` process can all talk to it; tests read and drive it through the
thread-safe methods of ``StandIn``. What it speaks:

- namespaced collections and objects under ``/api/v1`` and ``/apis/<group>/<version>``
  for pods, services, events, deployments, horizontalpodautoscalers,
  poddisruptionbudgets, jobs, secrets and (when ``keda=True``) KEDA scaledobjects; ``404`` for an
  unknown namespace or kind, ``401`` without the bearer token of the kubeconfig;
- server-side apply: ``PATCH`` ``application/apply-patch+yaml`` with ``fieldManager``
  (required) and ``force``; the manager's previously applied fields that it no longer
  applies are removed, other managers' fields are kept, a conflicting value owned by
  another manager is ``409`` unless forced; ``managedFields`` records who applied what;
  a no-op apply changes nothing (no new resourceVersion, no watch event);
  ``metadata.generation`` moves when ``spec`` changes; every applied object is validated
  (``kubernetes-validate``, Kubernetes 1.30 strict; KEDA against the vendored schema)
  and refused with ``422`` like a real API server would;
- ``GET`` (object, LIST with ``labelSelector``/``fieldSelector``), WATCH streams
  (``?watch=true``, from a ``resourceVersion`` or with synthetic ADDED events, ``410``
  once a version is older than the kept history, ``timeoutSeconds``);
- ``DELETE`` with ``propagationPolicy``: dependents (``ownerReferences``) are
  garbage-collected at once unless ``Orphan``;
- ``PATCH .../status`` (merge patch) for the status subresource.

Not emulated: controllers. Tests play the Deployment controller and the kubelet with
``roll_out``/``fail_image_pull``/``set_status``; pods are owned by the Deployment
directly (no ReplicaSet).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from aiohttp import web

SCHEMAS = Path(__file__).resolve().parent / "deploy" / "schemas"
KUBERNETES_VERSION = "1.30.0"
TOKEN = "stand-in-token"

Obj = dict[str, Any]

# (group, version, plural) -> (apiVersion, kind)
KINDS = {
    ("", "v1", "pods"): ("v1", "Pod"),
    ("", "v1", "services"): ("v1", "Service"),
    ("", "v1", "events"): ("v1", "Event"),
    ("apps", "v1", "deployments"): ("apps/v1", "Deployment"),
    ("autoscaling", "v2", "horizontalpodautoscalers"): ("autoscaling/v2",
                                                        "HorizontalPodAutoscaler"),
    ("policy", "v1", "poddisruptionbudgets"): ("policy/v1", "PodDisruptionBudget"),
    ("keda.sh", "v1alpha1", "scaledobjects"): ("keda.sh/v1alpha1", "ScaledObject"),
    ("batch", "v1", "jobs"): ("batch/v1", "Job"),
    ("", "v1", "secrets"): ("v1", "Secret"),
}
PLURALS = {kind: plural for (_g, _v, plural), kind in KINDS.items()}


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def json_response(body: Any, status: int = 200) -> web.Response:
    """JSON as the API server sends it (``application/json``, no charset parameter)."""
    return web.Response(body=json.dumps(body).encode(), status=status,
                        headers={"Content-Type": "application/json"})


def status_body(code: int, reason: str, message: str) -> Obj:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class ApiFailure(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def response(self) -> web.Response:
        return json_response(status_body(self.code, self.reason, self.message),
                                 status=self.code)


# -- selectors ---------------------------------------------------------------------------

def _lookup(obj: Obj, dotted: str) -> Any:
    cur: Any = obj
    for part in dotted.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


def parse_selector(text: str | None) -> list[Callable[[dict[str, str]], bool]]:
    """Equality and existence terms: ``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``."""
    preds: list[Callable[[dict[str, str]], bool]] = []
    for term in filter(None, (t.strip() for t in (text or "").split(","))):
        if "!=" in term:
            k, v = term.split("!=", 1)
            preds.append(lambda m, k=k, v=v: m.get(k) != v)
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            preds.append(lambda m, k=k, v=v: m.get(k) == v)
        elif term.startswith("!"):
            preds.append(lambda m, k=term[1:]: k not in m)
        else:
            preds.append(lambda m, k=term: k in m)
    return preds


def matches(obj: Obj, labels: str | None, fields: str | None) -> bool:
    obj_labels = obj.get("metadata", {}).get("labels") or {}
    if not all(p(obj_labels) for p in parse_selector(labels)):
        return False
    for term in filter(None, (fields or "").split(",")):
        negate = "!=" in term
        k, v = term.replace("!=", "=").replace("==", "=").split("=", 1)
        value = _lookup(obj, k)
        if (str(value) == v) == negate:
            return False
    return True


# -- server-side apply -------------------------------------------------------------------

def leaf_paths(obj: Any, prefix: tuple = ()) -> dict[tuple, Any]:
    """Map and scalar leaves of an applied config; lists are atomic (as mlgate applies them)."""
    if isinstance(obj, dict) and obj:
        out: dict[tuple, Any] = {}
        for k, v in obj.items():
            out.update(leaf_paths(v, (*prefix, k)))
        return out
    return {prefix: obj}


def fields_v1(applied: Obj) -> Obj:
    out: Obj = {}
    for path in leaf_paths({k: v for k, v in applied.items() if k not in ("apiVersion", "kind")}):
        cur = out
        for part in path:
            cur = cur.setdefault(f"f:{part}", {})
    return out


def remove_unapplied(obj: Obj, before: Obj, after: Obj) -> None:
    """Drop from ``obj`` what a manager applied ``before`` but no longer applies."""
    for key, old in before.items():
        if key not in after:
            obj.pop(key, None)
        elif isinstance(old, dict) and isinstance(after[key], dict) \
                and isinstance(obj.get(key), dict):
            remove_unapplied(obj[key], old, after[key])


def merge(base: Obj, patch: Obj) -> Obj:
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def validate(obj: Obj) -> None:
    """Refuse what a real API server refuses (unknown fields, wrong types, bad values)."""
    try:
        if obj.get("apiVersion") == "keda.sh/v1alpha1":
            schema = json.loads((SCHEMAS / "keda-scaledobject.json").read_text())
            jsonschema.validate(obj, schema)
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except (jsonschema.ValidationError, kubernetes_validate.ValidationError) as exc:
        raise ApiFailure(422, "Invalid", f"{obj.get('kind')} is invalid: {exc.message}") from None


# -- the store ---------------------------------------------------------------------------

@dataclass
class Watcher:
    resource: tuple[str, str, str]
    namespace: str
    labels: str | None
    fields: str | None
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    content_type: str


class Store:
    def __init__(self, namespaces: set[str], keda: bool, history: int = 1000) -> None:
        self.namespaces = set(namespaces)
        self.kinds = {k: v for k, v in KINDS.items() if keda or k[0] != "keda.sh"}
        self.objects: dict[tuple, Obj] = {}
        self.applied: dict[tuple, dict[str, Obj]] = {}  # object -> manager -> applied config
        self.version = itertools.count(1000)
        self.last_version = 999
        self.history: list[tuple[int, tuple, str, Obj]] = []
        self.history_size = history
        self.expired_before = 0
        self.watchers: list[Watcher] = []
        self.requests: list[Request] = []
        self.quiet = False  # changes reach no watcher (see StandIn.miss_events)

    def resource(self, group: str, version: str, plural: str) -> tuple[str, str, str]:
        key = (group, version, plural)
        if key not in self.kinds:
            where = f"{group}/{version}" if group else version
            raise ApiFailure(404, "NotFound",
                             f"the server could not find the requested resource ({plural} "
                             f"in {where})")
        return key

    def _bump(self, obj: Obj) -> None:
        self.last_version = next(self.version)
        obj["metadata"]["resourceVersion"] = str(self.last_version)

    def _emit(self, key: tuple, kind: str, obj: Obj) -> None:
        if self.quiet:
            return
        snapshot = copy.deepcopy(obj)
        self.history.append((self.last_version, key, kind, snapshot))
        if len(self.history) > self.history_size:
            self.expired_before = self.history.pop(0)[0]
        for w in self.watchers:
            if (w.resource, w.namespace) == key[:2] and matches(snapshot, w.labels, w.fields):
                w.queue.put_nowait((kind, snapshot))

    def expire_history(self) -> None:
        """Compact: a watch resuming from any version seen so far gets 410 Gone."""
        self.expired_before = self.last_version + 1
        self.history.clear()

    def disconnect_watches(self) -> None:
        for w in self.watchers:
            w.queue.put_nowait(None)

    def check_namespace(self, namespace: str) -> None:
        if namespace not in self.namespaces:
            raise ApiFailure(404, "NotFound", f'namespaces "{namespace}" not found')

    def get(self, resource: tuple, namespace: str, name: str) -> Obj:
        obj = self.objects.get((resource, namespace, name))
        if obj is None:
            raise ApiFailure(404, "NotFound", f'{resource[2]} "{name}" not found')
        return obj

    def list(self, resource: tuple, namespace: str, labels: str | None = None,
             fields: str | None = None) -> list[Obj]:
        return [o for (r, ns, _n), o in sorted(self.objects.items())
                if r == resource and ns == namespace and matches(o, labels, fields)]

    def _new_meta(self, obj: Obj, namespace: str) -> None:
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        meta["generation"] = 1
        if obj.get("kind") == "Deployment":
            obj.setdefault("spec", {}).setdefault("replicas", 1)
        if obj.get("kind") == "Service":
            obj.setdefault("spec", {}).setdefault("clusterIP", f"10.96.0.{len(self.objects)}")

    def create(self, resource: tuple, namespace: str, obj: Obj) -> Obj:
        self.check_namespace(namespace)
        obj = copy.deepcopy(obj)
        obj["apiVersion"], obj["kind"] = self.kinds[resource]
        name = obj.get("metadata", {}).get("name")
        if not name:
            raise ApiFailure(422, "Invalid", "metadata.name: Required value")
        key = (resource, namespace, name)
        if key in self.objects:
            raise ApiFailure(409, "AlreadyExists", f'{resource[2]} "{name}" already exists')
        self._new_meta(obj, namespace)
        self._bump(obj)
        self.objects[key] = obj
        self._emit(key, "ADDED", obj)
        return obj

    def apply(self, resource: tuple, namespace: str, name: str, applied: Obj, manager: str,
              force: bool) -> tuple[Obj, bool]:
        """Server-side apply; the stored object and whether it was created."""
        self.check_namespace(namespace)
        api_version, kind = self.kinds[resource]
        if (applied.get("apiVersion"), applied.get("kind")) != (api_version, kind):
            raise ApiFailure(400, "BadRequest", f"apply body must be {kind} {api_version}")
        meta = applied.get("metadata") or {}
        if meta.get("name") != name or meta.get("namespace", namespace) != namespace:
            raise ApiFailure(400, "BadRequest", "the name/namespace in the body differ from "
                                                "the URL")
        validate(applied)
        applied = {k: v for k, v in copy.deepcopy(applied).items() if k != "status"}
        key = (resource, namespace, name)
        managers = self.applied.setdefault(key, {})
        current = self.objects.get(key)
        if current is None:
            obj = copy.deepcopy(applied)
            self._new_meta(obj, namespace)
            created = True
        else:
            if not force:
                mine = leaf_paths(applied)
                for other, config in managers.items():
                    if other == manager:
                        continue
                    for path, value in leaf_paths(config).items():
                        if path in mine and mine[path] != value:
                            raise ApiFailure(409, "Conflict", f'Apply failed with 1 conflict: '
                                             f'conflict with "{other}": .{".".join(path)}')
            obj = copy.deepcopy(current)
            remove_unapplied(obj, managers.get(manager, {}), applied)
            obj = merge(obj, applied)
            if kind == "Deployment" and obj["spec"].get("selector") != \
                    current["spec"].get("selector"):
                raise ApiFailure(422, "Invalid", f'Deployment.apps "{name}" is invalid: '
                                 "spec.selector: Invalid value: field is immutable")
            created = False
        managers[manager] = applied
        obj["metadata"]["managedFields"] = [
            {"manager": m, "operation": "Apply", "apiVersion": api_version, "time": now(),
             "fieldsType": "FieldsV1", "fieldsV1": fields_v1(c)} for m, c in managers.items()]
        if current is not None:
            if obj == current:
                return current, False  # a no-op apply writes nothing
            if obj.get("spec") != current.get("spec"):
                obj["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        self._bump(obj)
        self.objects[key] = obj
        self._emit(key, "ADDED" if created else "MODIFIED", obj)
        return obj, created

    def patch_status(self, resource: tuple, namespace: str, name: str, patch: Obj) -> Obj:
        obj = copy.deepcopy(self.get(resource, namespace, name))
        obj["status"] = merge(obj.get("status") or {}, patch.get("status") or {})
        self._bump(obj)
        self.objects[(resource, namespace, name)] = obj
        self._emit((resource, namespace, name), "MODIFIED", obj)
        return obj

    def delete(self, resource: tuple, namespace: str, name: str, policy: str) -> Obj:
        key = (resource, namespace, name)
        obj = self.get(resource, namespace, name)
        del self.objects[key]
        self.applied.pop(key, None)
        self._bump(obj)
        self._emit(key, "DELETED", obj)
        uid = obj["metadata"]["uid"]
        for dep_key, dep in list(self.objects.items()):
            owners = dep["metadata"].get("ownerReferences") or []
            if not any(o.get("uid") == uid for o in owners) or dep_key not in self.objects:
                continue
            if policy == "Orphan":
                dep = copy.deepcopy(dep)
                dep["metadata"]["ownerReferences"] = [o for o in owners if o.get("uid") != uid]
                self._bump(dep)
                self.objects[dep_key] = dep
                self._emit(dep_key, "MODIFIED", dep)
            else:
                self.delete(*dep_key, policy)
        return obj


# -- HTTP --------------------------------------------------------------------------------

def parse_path(path: str) -> tuple[str, str, str, str, str | None, str | None]:
    """(group, version, namespace, plural, name, subresource) of a namespaced path."""
    parts = path.strip("/").split("/")
    if parts[:1] == ["api"]:
        group, rest = "", parts[1:]
    elif parts[:1] == ["apis"]:
        group, rest = parts[1] if len(parts) > 1 else "", parts[2:]
    else:
        raise ApiFailure(404, "NotFound", f"no such path {path}")
    if len(rest) < 4 or rest[1] != "namespaces":
        raise ApiFailure(404, "NotFound", f"no such path {path}")
    version, namespace, plural = rest[0], rest[2], rest[3]
    name = rest[4] if len(rest) > 4 else None
    sub = rest[5] if len(rest) > 5 else None
    return group, version, namespace, plural, name, sub


class StandInServer:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.app = web.Application()
        self.app.router.add_route("*", "/{path:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        s = self.store
        s.requests.append(Request(request.method, request.path, dict(request.query),
                                  request.content_type))
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return ApiFailure(401, "Unauthorized", "Unauthorized").response()
        try:
            group, version, namespace, plural, name, sub = parse_path(request.path)
            resource = s.resource(group, version, plural)
            q = request.query
            if name is None:
                if request.method == "GET" and q.get("watch") in ("true", "1"):
                    return await self.watch(request, resource, namespace)
                if request.method == "GET":
                    items = s.list(resource, namespace, q.get("labelSelector"),
                                   q.get("fieldSelector"))
                    api_version, kind = s.kinds[resource]
                    return json_response({
                        "apiVersion": api_version, "kind": f"{kind}List",
                        "metadata": {"resourceVersion": str(s.last_version)}, "items": items})
                if request.method == "POST":
                    return json_response(
                        s.create(resource, namespace, await request.json()), status=201)
                raise ApiFailure(405, "MethodNotAllowed", f"{request.method} not allowed")
            if sub == "status":
                if request.method == "GET":
                    return json_response(s.get(resource, namespace, name))
                if request.method == "PATCH":
                    return json_response(
                        s.patch_status(resource, namespace, name, await request.json()))
                raise ApiFailure(405, "MethodNotAllowed", f"{request.method} not allowed")
            if request.method == "GET":
                return json_response(s.get(resource, namespace, name))
            if request.method == "PATCH":
                if request.content_type != "application/apply-patch+yaml":
                    raise ApiFailure(415, "UnsupportedMediaType",
                                     f"the stand-in speaks only server-side apply, not "
                                     f"{request.content_type}")
                manager = q.get("fieldManager")
                if not manager:
                    raise ApiFailure(422, "Invalid", "PatchOptions.meta.k8s.io is invalid: "
                                     "fieldManager: Required value: is required for apply "
                                     "patch")
                body = yaml.safe_load(await request.text())
                obj, created = s.apply(resource, namespace, name, body, manager,
                                       q.get("force") == "true")
                return json_response(obj, status=201 if created else 200)
            if request.method == "DELETE":
                policy = q.get("propagationPolicy")
                if policy is None and request.can_read_body:
                    policy = (await request.json() or {}).get("propagationPolicy")
                obj = s.delete(resource, namespace, name, policy or "Background")
                return json_response(obj)
            raise ApiFailure(405, "MethodNotAllowed", f"{request.method} not allowed")
        except ApiFailure as exc:
            return exc.response()

    async def watch(self, request: web.Request, resource: tuple,
                    namespace: str) -> web.StreamResponse:
        s = self.store
        q = request.query
        labels, fields = q.get("labelSelector"), q.get("fieldSelector")
        since = q.get("resourceVersion")
        timeout = float(q.get("timeoutSeconds") or 300)
        watcher = Watcher(resource, namespace, labels, fields)
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)

        async def send(kind: str, obj: Obj) -> None:
            await resp.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        if since not in (None, "", "0") and int(since) < s.expired_before:
            await send("ERROR", status_body(410, "Expired",
                                            f"too old resource version: {since}"))
            await resp.write_eof()
            return resp
        backlog: list[tuple[str, Obj]]
        if since in (None, "", "0"):
            backlog = [("ADDED", o) for o in s.list(resource, namespace, labels, fields)]
        else:
            backlog = [(kind, o) for rv, key, kind, o in s.history
                       if rv > int(since) and key[:2] == (resource, namespace)
                       and matches(o, labels, fields)]
        s.watchers.append(watcher)
        try:
            for kind, obj in backlog:
                await send(kind, obj)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                try:
                    item = await asyncio.wait_for(watcher.queue.get(),
                                                  max(0.0, deadline - loop.time()))
                except TimeoutError:
                    break
                if item is None:
                    break
                await send(*item)
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            s.watchers.remove(watcher)
        return resp


class StandIn:
    """The stand-in API server in a background thread; methods are safe from any thread."""

    def __init__(self, namespaces: tuple[str, ...] = ("mlgate-models", "default"),
                 keda: bool = True) -> None:
        self.store = Store(set(namespaces), keda)
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="k8s-standin")
        self._runner: web.AppRunner | None = None

    def start(self) -> StandIn:
        self._thread.start()
        self.call(self._start)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(StandInServer(self.store).app, access_log=None,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    def close(self) -> None:
        if self._runner is not None:
            self.call(self.store.disconnect_watches)
            self.call(self._runner.cleanup)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` (a function or coroutine function) in the server's loop."""
        async def run() -> Any:
            result = fn(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return copy.deepcopy(result)
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    def write_kubeconfig(self, path: Path, namespace: str = "mlgate-models") -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "standin",
            "clusters": [{"name": "standin", "cluster": {"server": self.url}}],
            "users": [{"name": "standin", "user": {"token": TOKEN}}],
            "contexts": [{"name": "standin", "context": {
                "cluster": "standin", "user": "standin", "namespace": namespace}}],
        }))
        return path

    # -- reading ----------------------------------------------------------------------

    def _resource(self, kind: str) -> tuple[str, str, str]:
        for key, (_v, k) in KINDS.items():
            if k == kind:
                return key
        raise KeyError(kind)

    def objects(self, kind: str, namespace: str = "mlgate-models",
                labels: str | None = None) -> list[Obj]:
        return self.call(self.store.list, self._resource(kind), namespace, labels)

    def get(self, kind: str, name: str, namespace: str = "mlgate-models") -> Obj | None:
        found = [o for o in self.objects(kind, namespace) if o["metadata"]["name"] == name]
        return found[0] if found else None

    def requests(self) -> list[Request]:
        return self.call(lambda: list(self.store.requests))

    def writes(self) -> list[Request]:
        return [r for r in self.requests() if r.method in ("PATCH", "POST", "PUT", "DELETE")]

    # -- playing the controllers --------------------------------------------------------

    def create(self, obj: Obj, namespace: str = "mlgate-models") -> Obj:
        return self.call(self.store.create, self._resource(obj["kind"]), namespace, obj)

    def delete(self, kind: str, name: str, namespace: str = "mlgate-models") -> Obj:
        return self.call(self.store.delete, self._resource(kind), namespace, name, "Background")

    def set_status(self, kind: str, name: str, status: Obj,
                   namespace: str = "mlgate-models") -> Obj:
        return self.call(self.store.patch_status, self._resource(kind), namespace, name,
                         {"status": status})

    def miss_events(self, change: Callable[[], object]) -> None:
        """Make ``change`` unseen by every watch, compact the history and cut the watches:
        a client learns about the change only by listing again (after its 410 Gone)."""
        self.call(setattr, self.store, "quiet", True)
        try:
            change()
        finally:
            self.call(setattr, self.store, "quiet", False)
        self.call(self.store.expire_history)
        self.disconnect_watches()

    def scale(self, deployment: str, replicas: int, namespace: str = "mlgate-models") -> Obj:
        """Play the HPA: set the Deployment's replica count (another field manager's field)."""
        def update() -> Obj:
            key = (self._resource("Deployment"), namespace, deployment)
            obj = copy.deepcopy(self.store.objects[key])
            obj["spec"]["replicas"] = replicas
            obj["metadata"]["generation"] += 1
            self.store._bump(obj)
            self.store.objects[key] = obj
            self.store._emit(key, "MODIFIED", obj)
            return obj
        return self.call(update)

    def disconnect_watches(self) -> None:
        self.call(self.store.disconnect_watches)

    def add_pod(self, deployment: str, suffix: str, container_state: Obj, ready: bool,
                namespace: str = "mlgate-models") -> Obj:
        """A pod of ``deployment``'s template, as the kubelet would report it."""
        dep = self.get("Deployment", deployment, namespace)
        assert dep is not None, f"no Deployment {deployment}"
        template = dep["spec"]["template"]
        containers = template["spec"]["containers"]
        pod = self.create({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{deployment}-{suffix}",
                         "labels": dict(template["metadata"]["labels"]),
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                              "name": deployment,
                                              "uid": dep["metadata"]["uid"],
                                              "controller": True}]},
            "spec": copy.deepcopy(template["spec"]),
        }, namespace)
        statuses = [{"name": c["name"], "image": c["image"], "ready": ready,
                     "restartCount": 0, "state": container_state} for c in containers]
        return self.set_status("Pod", pod["metadata"]["name"], {
            "phase": "Running" if ready else "Pending", "containerStatuses": statuses,
            "conditions": [{"type": "Ready", "status": str(ready)}]}, namespace)

    def roll_out(self, deployment: str, available: int | None = None,
                 namespace: str = "mlgate-models") -> Obj:
        """Play the Deployment controller: the current generation, ``available`` pods ready."""
        dep = self.get("Deployment", deployment, namespace)
        assert dep is not None, f"no Deployment {deployment}"
        wanted = dep["spec"].get("replicas", 1) if available is None else available
        done = wanted >= dep["spec"].get("replicas", 1)
        return self.set_status("Deployment", deployment, {
            "observedGeneration": dep["metadata"]["generation"],
            "replicas": wanted, "updatedReplicas": wanted, "readyReplicas": wanted,
            "availableReplicas": wanted,
            "conditions": [
                {"type": "Available", "status": "True" if done else "False",
                 "reason": "MinimumReplicasAvailable" if done else "MinimumReplicasUnavailable",
                 "message": "Deployment has minimum availability."},
                {"type": "Progressing", "status": "True",
                 "reason": "NewReplicaSetAvailable" if done else "ReplicaSetUpdated",
                 "message": f'ReplicaSet "{deployment}-1" has '
                            f'{"successfully progressed" if done else "is progressing"}.'},
            ]}, namespace)

    def start_rollout(self, deployment: str, namespace: str = "mlgate-models") -> Obj:
        """The controller saw the spec and is creating pods; none is available yet."""
        dep = self.get("Deployment", deployment, namespace)
        assert dep is not None
        return self.set_status("Deployment", deployment, {
            "observedGeneration": dep["metadata"]["generation"], "replicas": 1,
            "updatedReplicas": 1, "availableReplicas": 0, "unavailableReplicas": 1,
            "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                 "message": "Deployment does not have minimum availability."},
                {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                 "message": f'ReplicaSet "{deployment}-1" is progressing.'}]}, namespace)

    def fail_image_pull(self, deployment: str, namespace: str = "mlgate-models") -> Obj:
        """A pod whose image cannot be pulled, with the kubelet's Warning event."""
        self.start_rollout(deployment, namespace)
        image = self.get("Deployment", deployment, namespace)["spec"]["template"]["spec"][
            "containers"][0]["image"]
        message = f'Back-off pulling image "{image}"'
        pod = self.add_pod(deployment, "bad01", {"waiting": {
            "reason": "ImagePullBackOff", "message": message}}, ready=False,
            namespace=namespace)
        self.create({"apiVersion": "v1", "kind": "Event",
                     "metadata": {"name": f"{pod['metadata']['name']}.1"},
                     "type": "Warning", "reason": "Failed",
                     "message": f'Failed to pull image "{image}": not found',
                     "involvedObject": {"kind": "Pod", "name": pod["metadata"]["name"],
                                        "namespace": namespace},
                     "lastTimestamp": now()}, namespace)
        return pod
