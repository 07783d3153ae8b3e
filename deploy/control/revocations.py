"""Revoked tokens: what the API accepts (pure validation) and where they are kept (SQLite).

Two kinds, as ``POST /api/v1/token/revocation`` takes them:

* ``{"jti": "...", "expiresAt": "..."}`` — one token. ``expiresAt`` (optional: the token's
  ``exp``) is when the entry may be forgotten: the token is no good after it anyway;
* ``{"sub": "...", "before": "..."}`` — every token of subject ``sub`` issued (``iat``)
  before ``before`` (default: now), e.g. a user who left or a leaked session. Tokens
  issued later are good again. ``expiresAt`` (optional) forgets the entry after it, once
  the last such token has expired.

A ``reason`` (free text, for people) may come with either. The list lives in the state
database beside deployments and routes (its own table, written with ``synchronous=FULL``:
a revocation that was acknowledged survives a crash), so it survives restarts;
listeners (``mlgate up``) hand every change to the gateway processes at once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deploy.control.resource import ValidationError, utcnow
from deploy.control.store import NotFound
from gateway import RevocationList

SCHEMA = """
CREATE TABLE IF NOT EXISTS revocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    jti TEXT UNIQUE,
    sub TEXT UNIQUE,
    before REAL,
    expires_at REAL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""
PREFIX = "invalid token revocation"
MAX_TEXT = 1024


@dataclass(frozen=True)
class Revocation:
    id: int
    jti: str | None
    sub: str | None
    before: float | None
    """Epoch seconds: tokens of ``sub`` issued before it are revoked."""
    expires_at: float | None
    reason: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "jti": self.jti, "sub": self.sub,
                "before": _iso(self.before), "expiresAt": _iso(self.expires_at),
                "reason": self.reason, "createdAt": self.created_at}


@dataclass(frozen=True)
class NewRevocation:
    jti: str | None
    sub: str | None
    before: float | None
    expires_at: float | None
    reason: str


def parse_revocation(body: Mapping[str, Any], now: float) -> NewRevocation:
    """A revocation from the API's JSON (``ValidationError`` listing every problem)."""
    errors: list[str] = []
    unknown = sorted(set(body) - {"jti", "sub", "before", "expiresAt", "reason"})
    if unknown:
        errors.append(f"unknown field(s): {', '.join(map(str, unknown))}")
    jti, sub = _text(body, "jti", errors), _text(body, "sub", errors)
    if (jti is None) == (sub is None):
        errors.append("give exactly one of jti (one token) or sub (a subject's tokens)")
    before = _time(body, "before", errors)
    if before is not None and jti is not None:
        errors.append("before goes with sub (tokens issued before a time), not with jti")
    expires = _time(body, "expiresAt", errors)
    reason = body.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_TEXT:
        errors.append(f"reason must be a string of at most {MAX_TEXT} characters")
    if errors:
        raise ValidationError(PREFIX, errors)
    if sub is not None and before is None:
        before = now
    return NewRevocation(jti, sub, before, expires, reason)


def _text(body: Mapping[str, Any], name: str, errors: list[str]) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
        errors.append(f"{name} must be a non-empty string of at most {MAX_TEXT} characters")
        return None
    return value


def _time(body: Mapping[str, Any], name: str, errors: list[str]) -> float | None:
    """RFC 3339 (``2025-06-01T12:00:00Z``) or epoch seconds."""
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    errors.append(f"{name} must be a time: RFC 3339 (2025-06-01T12:00:00Z) or epoch seconds")
    return None


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def revocation_list(entries: list[Revocation]) -> RevocationList:
    """What the gateway checks (:class:`gateway.RevocationList`)."""
    return RevocationList(
        jtis=frozenset(e.jti for e in entries if e.jti is not None),
        subjects={e.sub: e.before for e in entries if e.sub is not None and e.before})


Listener = Callable[[], None]


class RevocationStore:
    """The ``revocations`` table of ``state.db`` (its own connection; the primary's only)."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self._db = sqlite3.connect(Path(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._clock = clock
        self._listeners: list[Listener] = []

    def close(self) -> None:
        self._db.close()

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def list(self) -> list[Revocation]:
        """Every entry still needed (those past ``expiresAt`` are forgotten first)."""
        self._expire()
        rows = self._db.execute("SELECT id, jti, sub, before, expires_at, reason, created_at "
                                "FROM revocations ORDER BY id").fetchall()
        return [Revocation(*row) for row in rows]

    def current(self) -> RevocationList:
        return revocation_list(self.list())

    def add(self, new: NewRevocation) -> tuple[Revocation, bool]:
        """Store it (the same ``jti`` or ``sub`` again replaces the entry); the entry and
        whether it is new."""
        column, value = ("jti", new.jti) if new.jti is not None else ("sub", new.sub)
        with _Tx(self._db):
            row = self._db.execute(f"SELECT id FROM revocations WHERE {column} = ?",
                                   (value,)).fetchone()
            if row is not None:
                self._db.execute("UPDATE revocations SET before = ?, expires_at = ?, reason = ? "
                                 "WHERE id = ?", (new.before, new.expires_at, new.reason,
                                                  row[0]))
                rev_id = row[0]
            else:
                rev_id = self._db.execute(
                    "INSERT INTO revocations (jti, sub, before, expires_at, reason, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (new.jti, new.sub, new.before, new.expires_at,
                                                  new.reason, utcnow())).lastrowid
        self._changed()
        return self.get(rev_id), row is None

    def get(self, rev_id: int) -> Revocation:
        row = self._db.execute("SELECT id, jti, sub, before, expires_at, reason, created_at "
                               "FROM revocations WHERE id = ?", (rev_id,)).fetchone()
        if row is None:
            raise NotFound(f"token revocation {rev_id}")
        return Revocation(*row)

    def delete(self, rev_id: int) -> Revocation:
        """Take a revocation back (its tokens are good again, if still valid)."""
        with _Tx(self._db):
            found = self.get(rev_id)
            self._db.execute("DELETE FROM revocations WHERE id = ?", (rev_id,))
        self._changed()
        return found

    def _expire(self) -> None:
        gone = self._db.execute("DELETE FROM revocations WHERE expires_at IS NOT NULL AND "
                                "expires_at < ?", (self._clock(),)).rowcount
        if gone:
            self._changed()

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()


class _Tx:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
