"""``/api/v1/token/revocation``: revoke tokens (by ``jti``, or a subject's before a time),
list the revocations, take one back. Effective on every gateway process within a second
(``mlgate up`` pushes each change to its workers at once) and kept across restarts."""

from __future__ import annotations

import time

from aiohttp import web

from deploy.api.common import answer, read_object
from deploy.control.revocations import RevocationStore, parse_revocation
from deploy.control.store import NotFound

REVOCATIONS_PATH = "/token/revocation"
REVOCATION_STORE = web.AppKey("mlgate_revocation_store", RevocationStore)


def _store(request: web.Request) -> RevocationStore:
    return request.app[REVOCATION_STORE]


async def list_revocations(request: web.Request) -> web.Response:
    return answer(200, [r.to_dict() for r in _store(request).list()])


async def revoke(request: web.Request) -> web.Response:
    new = parse_revocation(await read_object(request), time.time())
    entry, created = _store(request).add(new)
    return answer(201 if created else 200, entry.to_dict())


async def get_revocation(request: web.Request) -> web.Response:
    return answer(200, _store(request).get(_id(request)).to_dict())


async def delete_revocation(request: web.Request) -> web.Response:
    entry = _store(request).delete(_id(request))
    what = f"jti {entry.jti}" if entry.jti else f"subject {entry.sub}"
    return answer(200, {"message": f"token revocation {entry.id} ({what}) was deleted"})


def _id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isdigit():
        raise NotFound(f"token revocation {text}")
    return int(text)


def add_routes(app: web.Application, prefix: str, store: RevocationStore) -> None:
    app[REVOCATION_STORE] = store
    base = prefix + REVOCATIONS_PATH
    app.router.add_get(base, list_revocations)
    app.router.add_post(base, revoke)
    app.router.add_get(base + "/{id}", get_revocation)
    app.router.add_delete(base + "/{id}", delete_revocation)
