"""Which model a running predictor serves: asked over HTTP once it is reachable.

The model's name and version live inside the image, not in the ModelDeployment, so the
controller (for the edge's routing table) and the sidecar ask the predictor:
``odahu-ml-server`` answers ``/healthcheck`` with ``Model-Name``/``Model-Version``
headers; Triton lists its loaded models at ``POST /v2/repository/index``.
"""

from __future__ import annotations

import contextlib
import logging

import aiohttp

log = logging.getLogger("mlgate.kubernetes")

UNKNOWN_VERSION = "unknown"


async def probe_identity(session: aiohttp.ClientSession, host: str, port: int,
                         predictor: str) -> tuple[str, str] | None:
    """``(model_name, model_version)`` reported by the predictor, or None when it did not say."""
    base = f"http://{host}:{port}"
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
        if predictor == "triton":
            async with session.post(f"{base}/v2/repository/index", json={}) as resp:
                if resp.status == 200:
                    models = await resp.json(content_type=None)
                    ready = [m for m in models if m.get("state") == "READY"] or models
                    if ready and ready[0].get("name"):
                        return ready[0]["name"], str(ready[0].get("version") or "1")
        else:
            async with session.get(f"{base}/healthcheck") as resp:
                name = resp.headers.get("Model-Name")
                if resp.status == 200 and name:
                    return name, resp.headers.get("Model-Version") or UNKNOWN_VERSION
    log.warning("the predictor at %s:%d did not say which model it serves", host, port)
    return None
