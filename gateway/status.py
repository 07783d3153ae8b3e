"""The status page: ``/status/``, for a person on one machine where there is no Grafana.

``GET /status/api/summary`` (authenticated, action ``read``) answers per deployment
its state, replicas, requests in flight, the last minute's request rate, error ratio
(5xx) and latency percentiles, and series over the last five minutes for the page's
charts. Everything comes from memory: the observe filter's per-second windows
(``rolling.py``), the routing table and the control plane's view. Building the
answer is a pure function (:func:`summarize`); the handler only gathers its inputs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from aiohttp import web

from .metrics import DeploymentState
from .observe import Observer
from .pages import STATIC_DIR, SWAGGER_UI_DIR, VENDOR_DIR, add_page
from .rolling import Totals, Window
from .routing import Deployment

STATUS_PREFIX = "/status/"
SUMMARY_PATH = "/status/api/summary"
LAST_SECONDS = 60
SPAN_SECONDS = 300
STEP_SECONDS = 5
PAGE_DIR = STATIC_DIR / "status"


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _ratio(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def last_minute(totals: Totals, seconds: int) -> dict[str, Any]:
    return {"requests": totals.requests, "rate": round(totals.requests / seconds, 3),
            "errors": totals.errors, "error_ratio": _ratio(totals.error_ratio),
            "p50_ms": _ms(totals.quantile(0.5)), "p90_ms": _ms(totals.quantile(0.9)),
            "p99_ms": _ms(totals.quantile(0.99))}


def series(window: Window | None, now: int, span: int, step: int) -> dict[str, list[Any]]:
    """Points every ``step`` seconds, oldest first; rates per second, latencies in ms."""
    points = window.series(now, span, step) if window is not None else [
        (end, Totals(0, 0, ())) for end in range(now - (span // step - 1) * step, now + 1, step)]
    return {
        "time": [end for end, _ in points],
        "rate": [round(t.requests / step, 3) for _, t in points],
        "error_ratio": [_ratio(t.error_ratio) for _, t in points],
        "p50_ms": [_ms(t.quantile(0.5)) for _, t in points],
        "p99_ms": [_ms(t.quantile(0.99)) for _, t in points],
    }


def summarize(states: Sequence[DeploymentState], entries: Mapping[str, Deployment],
              windows: Mapping[str, Window], now: int, storage: Mapping[str, Any] | None = None,
              last: int = LAST_SECONDS, span: int = SPAN_SECONDS,
              step: int = STEP_SECONDS) -> dict[str, Any]:
    """The summary document, one entry per deployment the control plane or table knows."""
    deployments = []
    for state in sorted(states, key=lambda s: s.id):
        entry = entries.get(state.id)
        window = windows.get(state.id)
        totals = window.totals(now, last) if window is not None else Totals(0, 0, ())
        deployments.append({
            "id": state.id,
            "model_name": entry.model_name if entry is not None else "",
            "model_version": entry.model_version if entry is not None else "",
            "state": state.state, "reason": state.reason,
            "replicas": {"desired": state.desired_replicas,
                         "available": state.available_replicas},
            "in_flight": entry.in_flight if entry is not None else 0,
            "last_minute": last_minute(totals, last),
            "series": series(window, now, span, step),
        })
    return {"time": now, "last_seconds": last, "span_seconds": span, "step_seconds": step,
            "deployments": deployments, "storage": dict(storage) if storage else None}


def add_routes(app: web.Application, observer: Observer) -> None:
    """The page (open static files) and its data endpoint (authenticated)."""

    async def summary(_request: web.Request) -> web.Response:
        observer.forget_gone()
        entries = {d.id: d for d in observer.table.deployments()}
        stats = observer.writer_stats
        doc = summarize(observer.states(), entries, observer.windows, int(time.time()),
                        stats.as_dict() if stats is not None else None)
        return web.Response(body=orjson.dumps(doc), content_type="application/json",
                            headers={"Cache-Control": "no-store"})

    app.router.add_get(SUMMARY_PATH, summary, name="status-summary")
    add_page(app, STATUS_PREFIX, {
        "": PAGE_DIR / "index.html", "index.html": PAGE_DIR / "index.html",
        "status.js": PAGE_DIR / "status.js", "status.css": PAGE_DIR / "status.css",
        "quality.js": PAGE_DIR / "quality.js",
        "rollout.js": PAGE_DIR / "rollout.js",
        "mlgate-token.js": SWAGGER_UI_DIR / "mlgate-token.js",
        "uPlot.iife.min.js": VENDOR_DIR / "uplot" / "uPlot.iife.min.js",
        "uPlot.min.css": VENDOR_DIR / "uplot" / "uPlot.min.css",
    })
