"""A small HTTP client for the management API and the model endpoints (what the CLI uses).

Every failure is an :class:`ApiError` whose message is the server's ``message``
(or a sentence about the connection), so the CLI can print it as is.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:5080"
API = "/api/v1"


class ApiError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def default_url() -> str:
    return os.environ.get("MLGATE_URL") or DEFAULT_URL


def default_token() -> str:
    return os.environ.get("MLGATE_TOKEN", "")


class Client:
    def __init__(self, url: str | None = None, token: str | None = None,
                 timeout: float = 60.0) -> None:
        self.url = (url or default_url()).rstrip("/")
        token = default_token() if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            resp = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach {self.url}: {exc}") from exc
        if resp.status_code >= 400:
            raise ApiError(_message(resp), resp.status_code)
        return resp

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        return self.request(method, path, **kw).json()

    # -- resources: kind is "deployment" or "route" ---------------------------------------------

    def list(self, kind: str) -> list[dict[str, Any]]:
        return self._json("GET", f"{API}/model/{kind}")

    def get(self, kind: str, obj_id: str) -> dict[str, Any]:
        return self._json("GET", f"{API}/model/{kind}/{obj_id}")

    def create(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", f"{API}/model/{kind}", json=obj)

    def update(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        return self._json("PUT", f"{API}/model/{kind}", json=obj)

    def delete(self, kind: str, obj_id: str) -> str:
        return self._json("DELETE", f"{API}/model/{kind}/{obj_id}").get("message", "")

    def default_route(self, deployment_id: str) -> dict[str, Any]:
        return self._json("GET", f"{API}/model/deployment/{deployment_id}/default-route")

    # -- inference jobs (/api/v1/batch/job) --------------------------------------------------------

    def jobs(self) -> list[dict[str, Any]]:
        return self._json("GET", f"{API}/batch/job")

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"{API}/batch/job/{job_id}")

    def create_job(self, job: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", f"{API}/batch/job", json=job)

    def delete_job(self, job_id: str) -> str:
        return self._json("DELETE", f"{API}/batch/job/{job_id}").get("message", "")

    def resume_job(self, job_id: str, retry_errors: bool = False) -> dict[str, Any]:
        return self._json("POST", f"{API}/batch/job/{job_id}/resume",
                          json={"retryErrors": retry_errors})

    # -- models -----------------------------------------------------------------------------------

    def model_url(self, deployment: str | None = None, route: str | None = None) -> str:
        """The edge URL of a deployment's default route or of a route (``status.edgeUrl``)."""
        found = self.default_route(deployment) if deployment else self.get("route", route or "")
        return found["status"]["edgeUrl"]

    def model_info(self, model_url: str) -> Any:
        return self._json("GET", f"{model_url}/api/model/info")

    def invoke(self, model_url: str, path: str, body: bytes,
               headers: dict[str, str]) -> httpx.Response:
        """POST ``body`` to ``path`` below a model's URL (``/api/model/invoke``, a v2 infer)."""
        return self.request("POST", f"{model_url}{path}", content=body, headers=headers)

    def send_feedback(self, model: str, version: str, request_id: str, payload: Any) -> Any:
        return self._json("POST", f"{API}/feedback", json=payload, headers={
            "model-name": model, "model-version": version, "request-id": request_id})


def _message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return f"{body['message']} (HTTP {resp.status_code})"
    return f"HTTP {resp.status_code} from {resp.request.method} {resp.request.url}"
