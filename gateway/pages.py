"""The browser pages' static files, served as exactly the files listed, nothing else.

Which names are open without a token is decided in ``auth/classify.py``
(``PAGE_ASSETS``); a page registers the same names here, and a test checks that
the two lists agree. Every answer carries headers that keep the page to its own
origin: no framing, no sniffing, scripts and styles only from the gateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).resolve().parent / "static"
SWAGGER_UI_DIR = STATIC_DIR / "swagger-ui"
VENDOR_DIR = STATIC_DIR / "vendor"

PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
        "form-action 'self'"),
}


def add_page(app: web.Application, prefix: str, files: Mapping[str, Path]) -> None:
    """``GET``/``HEAD`` of ``prefix + name`` for each file (``""`` is the page itself);
    ``prefix`` without its slash redirects to the page."""
    for name, path in files.items():
        if not path.is_file():
            raise FileNotFoundError(f"page asset {prefix}{name}: {path} is missing")
        app.router.add_get(prefix + name, _serve(path))

    async def to_page(_request: web.Request) -> web.Response:
        raise web.HTTPFound(prefix)

    app.router.add_get(prefix.rstrip("/"), to_page)


def _serve(path: Path):
    async def serve(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(path, headers=PAGE_HEADERS)

    return serve
