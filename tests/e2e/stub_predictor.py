"""A fixed-answer odahu-ml-server stand-in for tests that need an upstream but no model."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson


class Predictor(BaseHTTPRequestHandler):
    """A fixed-answer odahu-ml-server stand-in (the sidecar's only upstream)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer({"status": "ok"} if self.path == "/healthcheck" else {"paths": {}})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer({"prediction": [5.5], "columns": ["quality"]})

    def _answer(self, payload: object) -> None:
        body = orjson.dumps(payload)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Model-Name", "wine")
        self.send_header("Model-Version", "1.0")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        return None


@contextmanager
def stub_predictor() -> Iterator[int]:
    """Serve :class:`Predictor` on 127.0.0.1; yields its port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Predictor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
