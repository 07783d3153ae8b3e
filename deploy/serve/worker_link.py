"""The private link between ``mlgate up`` and its gateway workers, and what travels on it.

A Unix socketpair made by the primary; the worker inherits its end as a file
descriptor. Frames are a 4-byte big-endian length and a pickled tuple: both ends
are this program, started by the primary on a channel nobody else holds, so no
untrusted byte is ever unpickled.

Primary -> worker:
    ("table", TableSnapshot)        the route table, on every change
    ("revocations", RevocationList) the revoked tokens, at start (before the first table)
                                    and on every change
Worker -> primary:
    ("ready",)                      listening, first table applied
    ("demand", deployment_id)       a request found no replica (cold start)
    ("load", {id: (requests, in_flight, shed)})   every ``LOAD_INTERVAL`` seconds
    ("observed", gateway.peers.PeerReport)   once a second

The snapshot functions are pure, so they are tested without processes.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway import DEFAULT_ADMISSION, Admission, RateRule, RouteTable, TrafficRoute

LOAD_INTERVAL = 0.25
OBSERVED_EVERY = 4
"""A ``("observed", PeerReport)`` (metrics, status windows, writer counters) every
``OBSERVED_EVERY`` load reports: once a second."""
_HEADER = struct.Struct(">I")
MAX_FRAME = 64 << 20


@dataclass(frozen=True, slots=True)
class DeploymentSnapshot:
    id: str
    model_name: str
    model_version: str
    role_name: str | None
    replicas: tuple[tuple[str, int], ...]
    cold_start_timeout: float
    unavailable_reason: str
    ready: bool
    admission: Admission = DEFAULT_ADMISSION
    rate_limits: tuple[RateRule, ...] = ()


@dataclass(frozen=True, slots=True)
class TableSnapshot:
    deployments: tuple[DeploymentSnapshot, ...]
    routes: tuple[TrafficRoute, ...]


def snapshot(table: RouteTable) -> TableSnapshot:
    """What a worker needs of the primary's table (not its counters: each process keeps its own)."""
    return TableSnapshot(
        deployments=tuple(
            DeploymentSnapshot(d.id, d.model_name, d.model_version, d.role_name,
                               tuple((r.host, r.port) for r in d.replicas),
                               d.cold_start_timeout, d.unavailable_reason, d.ready,
                               d.admission, d.rate_limits)
            for d in sorted(table.deployments(), key=lambda d: d.id)),
        routes=tuple(sorted(table.routes(), key=lambda r: r.url_prefix)))


def apply_snapshot(table: RouteTable, snap: TableSnapshot,
                   on_demand: Callable[[str], None] | None) -> None:
    """Make ``table`` say what ``snap`` says, through the table's own methods, so requests
    waiting for a replica wake up and replicas that stay keep their counters."""
    wanted = set()
    for d in snap.deployments:
        wanted.add(d.id)
        entry = table.get(d.id)
        if entry is None or (entry.model_name, entry.model_version, entry.role_name) != (
                d.model_name, d.model_version, d.role_name):
            entry = table.upsert(d.id, d.model_name, d.model_version, role_name=d.role_name)
        entry.on_demand = on_demand
        entry.cold_start_timeout = d.cold_start_timeout
        entry.ready = d.ready
        entry.admission = d.admission
        entry.rate_limits = d.rate_limits
        if tuple((r.host, r.port) for r in entry.replicas) != d.replicas:
            table.set_replicas(d.id, d.replicas)
        if entry.unavailable_reason != d.unavailable_reason:
            table.set_unavailable(d.id, d.unavailable_reason)
    for entry in table.deployments():
        if entry.id not in wanted:
            table.remove(entry.id)
    table.set_routes(snap.routes)


def load_report(table: RouteTable) -> dict[str, tuple[int, int, int]]:
    """Per deployment: requests received so far, requests in flight now, and requests shed
    so far for want of a replica slot."""
    return {d.id: (d.requests, d.in_flight, d.shed) for d in table.deployments()}


class Link:
    """Framed messages over a connected stream socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, sock: Any) -> Link:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer)

    def send(self, *message: Any) -> None:
        if self.writer.is_closing():
            return
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.writer.write(_HEADER.pack(len(data)) + data)

    async def receive(self) -> tuple[Any, ...] | None:
        """The next message, or None when the other end closed."""
        try:
            header = await self.reader.readexactly(_HEADER.size)
            (size,) = _HEADER.unpack(header)
            if size > MAX_FRAME:
                raise ValueError(f"worker link frame of {size} bytes")
            return pickle.loads(await self.reader.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
