"""The control plane's state: deployments, routes, inference jobs and canary rollouts in
SQLite under the data dir.

The API writes specs, the reconciler writes statuses. Each spec change bumps
the deployment's ``generation``; a status computed for an older generation is
refused (ODAHU does the same with a hash of the spec), so a slow reconcile
step can never overwrite the status of a newer spec. Listeners are called after
every committed change, which is how the reconciler learns that it has work.

All calls are synchronous and short (one small transaction); they run on the
event loop's thread.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.control.deployments import (
    STATE_DELETING,
    STATE_PROCESSING,
    ModelDeployment,
    ModelDeploymentStatus,
    parse_deployment,
)
from deploy.control.jobs import (
    ACTIVE_STATES,
    STATE_SCHEDULING,
    InferenceJob,
    InferenceJobStatus,
    Submitter,
    job_from_stored,
)
from deploy.control.resource import utcnow
from deploy.control.routes import ModelRoute, default_route, route_from_stored

SCHEMA = """
CREATE TABLE IF NOT EXISTS deployments (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    generation INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS routes (
    id TEXT PRIMARY KEY,
    is_default INTEGER NOT NULL,
    deployment_id TEXT,
    spec TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS routes_default ON routes (deployment_id) WHERE is_default = 1;
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    generation INTEGER NOT NULL,
    submitter TEXT NOT NULL,
    retry_errors INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rollouts (
    route_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    history TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""


class StoreError(Exception):
    """Base of the store's errors; ``status`` is the HTTP code the API answers with."""

    status = 500


class NotFound(StoreError):
    status = 404

    def __init__(self, entity: str) -> None:
        super().__init__(f'entity "{entity}" is not found')


class AlreadyExists(StoreError):
    status = 409

    def __init__(self, entity: str) -> None:
        super().__init__(f'entity "{entity}" already exists')


class Conflict(StoreError):
    status = 409


class Forbidden(StoreError):
    status = 403


Listener = Callable[[], None]


@dataclass(frozen=True)
class StoredRollout:
    """A route's canary rollout as stored: the state machine's ``RolloutState.to_dict()`` and
    its history (``deploy.control.rollout_view``)."""

    route_id: str
    state: dict[str, Any]
    history: list[dict[str, Any]]
    updated_at: str


class Store:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._listeners: list[Listener] = []

    def close(self) -> None:
        self._db.close()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    # -- deployments ---------------------------------------------------------------------------

    def list_deployments(self) -> list[ModelDeployment]:
        rows = self._db.execute("SELECT id, spec, status, generation, created_at, updated_at "
                                "FROM deployments ORDER BY id").fetchall()
        return [_deployment(row) for row in rows]

    def get_deployment(self, dep_id: str) -> ModelDeployment:
        row = self._db.execute("SELECT id, spec, status, generation, created_at, updated_at "
                               "FROM deployments WHERE id = ?", (dep_id,)).fetchone()
        if row is None:
            raise NotFound(dep_id)
        return _deployment(row)

    def has_deployment(self, dep_id: str) -> bool:
        return self._db.execute("SELECT 1 FROM deployments WHERE id = ?",
                                (dep_id,)).fetchone() is not None

    def create_deployment(self, dep: ModelDeployment) -> ModelDeployment:
        """Store a new deployment (state Processing) and its default route, in one transaction."""
        now = utcnow()
        status = ModelDeploymentStatus(state=STATE_PROCESSING, last_updated_time=now)
        route = default_route(dep.id)
        with self._tx():
            if self.has_deployment(dep.id):
                raise AlreadyExists(dep.id)
            self._db.execute(
                "INSERT INTO deployments VALUES (?, ?, ?, 1, ?, ?)",
                (dep.id, _json(dep.spec.to_dict()), _json(status.to_dict()), now, now))
            if self.default_route_id(dep.id) is None:
                self._db.execute("INSERT INTO routes VALUES (?, 1, ?, ?, ?, ?)",
                                 (route.id, dep.id, _json(route.spec.to_dict()), now, now))
        self._changed()
        return self.get_deployment(dep.id)

    def update_deployment(self, dep: ModelDeployment) -> ModelDeployment:
        """Replace the spec; status goes back to Processing under a new generation."""
        now = utcnow()
        status = ModelDeploymentStatus(state=STATE_PROCESSING, last_updated_time=now)
        with self._tx():
            current = self.get_deployment(dep.id)
            if current.status.state == STATE_DELETING:
                raise Conflict(f'entity "{dep.id}" is being deleted')
            status.model_name = current.status.model_name
            status.model_version = current.status.model_version
            self._db.execute(
                "UPDATE deployments SET spec = ?, status = ?, generation = generation + 1, "
                "updated_at = ? WHERE id = ?",
                (_json(dep.spec.to_dict()), _json(status.to_dict()), now, dep.id))
        self._changed()
        return self.get_deployment(dep.id)

    def apply_deployment(self, dep: ModelDeployment) -> tuple[ModelDeployment, str]:
        """Create or update (``mlgate up -f``); an identical spec is left alone.

        Returns the stored deployment and what happened: created, updated or unchanged.
        """
        try:
            current = self.get_deployment(dep.id)
        except NotFound:
            return self.create_deployment(dep), "created"
        if current.status.state == STATE_DELETING:
            self.remove_deployment(dep.id)
            return self.create_deployment(dep), "created"
        if current.spec.to_dict() == dep.spec.to_dict():
            return current, "unchanged"
        return self.update_deployment(dep), "updated"

    def mark_deleting(self, dep_id: str) -> ModelDeployment:
        """ODAHU's deletion mark: state Deleting; the reconciler stops replicas, then removes it."""
        with self._tx():
            current = self.get_deployment(dep_id)
            status = current.status
            status.state = STATE_DELETING
            status.reason = ""
            status.last_updated_time = utcnow()
            self._db.execute("UPDATE deployments SET status = ? WHERE id = ?",
                             (_json(status.to_dict()), dep_id))
        self._changed()
        return self.get_deployment(dep_id)

    def remove_deployment(self, dep_id: str) -> None:
        """Remove the deployment and its default route (user routes naming it stay, Failed)."""
        with self._tx():
            self._db.execute("DELETE FROM routes WHERE is_default = 1 AND deployment_id = ?",
                             (dep_id,))
            self._db.execute("DELETE FROM deployments WHERE id = ?", (dep_id,))
        self._changed()

    def set_status(self, dep_id: str, generation: int, status: ModelDeploymentStatus) -> bool:
        """Store a status computed for ``generation``; False if the spec changed meanwhile.

        A deployment marked Deleting keeps that state whatever the status says.
        """
        with self._tx():
            row = self._db.execute("SELECT generation, status FROM deployments WHERE id = ?",
                                   (dep_id,)).fetchone()
            if row is None or row[0] != generation:
                return False
            if json.loads(row[1]).get("state") == STATE_DELETING:
                status.state = STATE_DELETING
            self._db.execute("UPDATE deployments SET status = ? WHERE id = ?",
                             (_json(status.to_dict()), dep_id))
        return True

    # -- routes --------------------------------------------------------------------------------

    def list_routes(self) -> list[ModelRoute]:
        rows = self._db.execute("SELECT id, is_default, spec, created_at, updated_at FROM routes "
                                "ORDER BY id").fetchall()
        return [_route(row) for row in rows]

    def get_route(self, route_id: str) -> ModelRoute:
        row = self._db.execute("SELECT id, is_default, spec, created_at, updated_at FROM routes "
                               "WHERE id = ?", (route_id,)).fetchone()
        if row is None:
            raise NotFound(route_id)
        return _route(row)

    def default_route_id(self, dep_id: str) -> str | None:
        row = self._db.execute("SELECT id FROM routes WHERE is_default = 1 AND deployment_id = ?",
                               (dep_id,)).fetchone()
        return row[0] if row else None

    def default_route(self, dep_id: str) -> ModelRoute:
        route_id = self.default_route_id(dep_id)
        if route_id is None:
            raise NotFound(dep_id)
        return self.get_route(route_id)

    def create_route(self, route: ModelRoute) -> ModelRoute:
        now = utcnow()
        with self._tx():
            if self._db.execute("SELECT 1 FROM routes WHERE id = ?", (route.id,)).fetchone():
                raise AlreadyExists(route.id)
            self._db.execute("INSERT INTO routes VALUES (?, 0, NULL, ?, ?, ?)",
                             (route.id, _json(route.spec.to_dict()), now, now))
        self._changed()
        return self.get_route(route.id)

    def update_route(self, route: ModelRoute) -> ModelRoute:
        with self._tx():
            current = self.get_route(route.id)
            if current.default:
                raise Forbidden(f'unable to update default route with ID "{route.id}"')
            self._db.execute("UPDATE routes SET spec = ?, updated_at = ? WHERE id = ?",
                             (_json(route.spec.to_dict()), utcnow(), route.id))
            if route.spec.analysis is None:
                self._db.execute("DELETE FROM rollouts WHERE route_id = ?", (route.id,))
        self._changed()
        return self.get_route(route.id)

    def delete_route(self, route_id: str) -> None:
        with self._tx():
            if self.get_route(route_id).default:
                raise Forbidden(f'unable to delete default route with ID "{route_id}"')
            self._db.execute("DELETE FROM routes WHERE id = ?", (route_id,))
            self._db.execute("DELETE FROM rollouts WHERE route_id = ?", (route_id,))
        self._changed()

    # -- canary rollouts -----------------------------------------------------------------------
    # A route with spec.analysis has one rollout row, written by the rollout driver (and the
    # API's manual actions through it). A write names the analysis it was computed for and is
    # refused when the route's stored analysis is another one by then, like a deployment's
    # status and its generation; the route's weights change in the same transaction.

    def list_rollouts(self) -> dict[str, StoredRollout]:
        rows = self._db.execute("SELECT route_id, state, history, updated_at FROM rollouts")
        return {row[0]: _rollout(row) for row in rows}

    def get_rollout(self, route_id: str) -> StoredRollout | None:
        row = self._db.execute("SELECT route_id, state, history, updated_at FROM rollouts "
                               "WHERE route_id = ?", (route_id,)).fetchone()
        return _rollout(row) if row else None

    def save_rollout(self, route_id: str, analysis: Mapping[str, Any], state: dict[str, Any],
                     history: list[dict[str, Any]], weights: Mapping[str, int]) -> bool:
        """Store a rollout's state and history and give the route's targets ``weights``, in
        one transaction; False (nothing written) when the route is gone or its stored
        ``spec.analysis`` is no longer ``analysis``."""
        with self._tx():
            row = self._db.execute("SELECT spec FROM routes WHERE id = ? AND is_default = 0",
                                   (route_id,)).fetchone()
            if row is None:
                return False
            spec = json.loads(row[0])
            if spec.get("analysis") != analysis:
                return False
            now = utcnow()
            self._db.execute("INSERT OR REPLACE INTO rollouts VALUES (?, ?, ?, ?)",
                             (route_id, _json(state), _json(history), now))
            targets = [{**t, "weight": int(weights.get(t["mdName"], t["weight"]))}
                       for t in spec["modelDeployments"]]
            moved = targets != spec["modelDeployments"]
            if moved:
                self._db.execute("UPDATE routes SET spec = ?, updated_at = ? WHERE id = ?",
                                 (_json({**spec, "modelDeployments": targets}), now, route_id))
        if moved:
            self._changed()
        return True

    def delete_rollout(self, route_id: str) -> None:
        """Forget a rollout (its route lost ``spec.analysis``); the weights stay as they are."""
        with self._tx():
            self._db.execute("DELETE FROM rollouts WHERE route_id = ?", (route_id,))

    # -- inference jobs ------------------------------------------------------------------------
    # A job's ``generation`` names its current run: set from the clock when it is created (so
    # a job deleted and created again under the same id is a new one), one more at each
    # resume. The supervisor's status writes name the run they belong to, so a late write
    # of an old run is refused.

    _JOB_COLUMNS = ("SELECT id, spec, status, generation, submitter, retry_errors, created_at, "
                    "updated_at FROM jobs")

    def list_jobs(self) -> list[InferenceJob]:
        return [_job(row) for row in self._db.execute(self._JOB_COLUMNS + " ORDER BY id")]

    def get_job(self, job_id: str) -> InferenceJob:
        row = self._db.execute(self._JOB_COLUMNS + " WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(job_id)
        return _job(row)

    def create_job(self, job: InferenceJob) -> InferenceJob:
        """Store a new job, state Scheduling: the supervisor starts it."""
        now = utcnow()
        status = InferenceJobStatus(state=STATE_SCHEDULING, last_updated_time=now)
        with self._tx():
            if self._db.execute("SELECT 1 FROM jobs WHERE id = ?", (job.id,)).fetchone():
                raise AlreadyExists(job.id)
            self._db.execute("INSERT INTO jobs VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                             (job.id, _json(job.spec.to_dict()), _json(status.to_dict()),
                              time.time_ns() // 1000, _json(job.submitter.to_dict()), now,
                              now))
        self._changed()
        return self.get_job(job.id)

    def resume_job(self, job_id: str, retry_errors: bool, submitter: Submitter) -> InferenceJob:
        """Run a job that ended again (a new generation); 409 while it still runs."""
        now = utcnow()
        with self._tx():
            current = self.get_job(job_id)
            if current.status.state in ACTIVE_STATES:
                raise Conflict(f'inference job "{job_id}" is {current.status.state}; resume '
                               "it once it has ended")
            previous = current.status  # the new run counts again from what is committed
            status = InferenceJobStatus(state=STATE_SCHEDULING, deployment=previous.deployment,
                                        runs=previous.runs, last_updated_time=now)
            self._db.execute(
                "UPDATE jobs SET status = ?, generation = generation + 1, submitter = ?, "
                "retry_errors = ?, updated_at = ? WHERE id = ?",
                (_json(status.to_dict()), _json(submitter.to_dict()), int(retry_errors), now,
                 job_id))
        self._changed()
        return self.get_job(job_id)

    def job_generation(self, job_id: str) -> int | None:
        row = self._db.execute("SELECT generation FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row[0] if row else None

    def set_job_status(self, job_id: str, generation: int, status: InferenceJobStatus) -> bool:
        """Store the status of run ``generation``; False if the job is gone or ran again."""
        status.last_updated_time = utcnow()
        with self._tx():
            if self.job_generation(job_id) != generation:
                return False
            self._db.execute("UPDATE jobs SET status = ? WHERE id = ?",
                             (_json(status.to_dict()), job_id))
        return True

    def delete_job(self, job_id: str) -> None:
        """Forget the job (its outputs stay); the supervisor stops a run in progress."""
        with self._tx():
            self.get_job(job_id)
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        self._changed()

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` when the block raises."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")


def _json(value: object) -> str:
    return json.dumps(value, sort_keys=True)


def _deployment(row: tuple) -> ModelDeployment:
    dep_id, spec, status, generation, created_at, updated_at = row
    dep = parse_deployment({"id": dep_id, "spec": json.loads(spec)})
    dep.status = ModelDeploymentStatus.from_dict(json.loads(status))
    dep.generation, dep.created_at, dep.updated_at = generation, created_at, updated_at
    return dep


def _route(row: tuple) -> ModelRoute:
    route_id, is_default, spec, created_at, updated_at = row
    return route_from_stored(route_id, bool(is_default), json.loads(spec), created_at, updated_at)


def _rollout(row: tuple) -> StoredRollout:
    route_id, state, history, updated_at = row
    return StoredRollout(route_id, json.loads(state), json.loads(history), updated_at)


def _job(row: tuple) -> InferenceJob:
    job_id, spec, status, generation, submitter, retry_errors, created_at, updated_at = row
    job = job_from_stored(job_id, json.loads(spec), json.loads(status), created_at, updated_at,
                          json.loads(submitter), bool(retry_errors))
    job.generation = generation
    return job
