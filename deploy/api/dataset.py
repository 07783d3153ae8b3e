"""``GET /api/v1/dataset``: a training data set as one Parquet or JSON Lines file, streamed.

Query: ``model`` (required), ``version``, ``deployment``, ``since``, ``until`` (UTC dates or
times; the range widens to whole hours), ``labelled_only`` (``true``/``false``), ``format``
(``parquet``, default, or ``jsonl``), and ``task``, ``prediction``, ``label`` (default: the
``spec.quality`` of the deployment asked for, or of the model's first deployment that has
one). The rows are those of ``mlgate dataset export`` (``feedback.dataset.query``), with
``model_name`` and ``model_version`` as columns. Action ``dataset:read`` (SECURITY.md).
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from deploy.api.common import STORE, Unavailable
from deploy.api.records import RECORDS
from deploy.control.quality import quality_spec
from deploy.control.resource import ValidationError
from deploy.control.store import Store
from storage import parse_bound

DATASET_VALIDATION = "Invalid data set query"
CONTENT_TYPES = {"parquet": "application/vnd.apache.parquet", "jsonl": "application/x-ndjson"}
CHUNK = 1 << 20




def _flag(value: str | None, name: str, errors: list[str]) -> bool:
    if value is None or value.lower() in ("", "false", "0", "no"):
        return False
    if value.lower() in ("true", "1", "yes"):
        return True
    errors.append(f"{name} must be true or false, got {value!r}")
    return False


def export_query(query: Mapping[str, str], store: Store) -> tuple[Any, str]:
    """The ``ExportQuery`` and format a request asks for; ``ValidationError`` naming every bad
    parameter."""
    from feedback.dataset import FORMATS, DatasetError, ExportQuery

    errors: list[str] = []
    known = {"model", "version", "deployment", "since", "until", "labelled_only", "format",
             "task", "prediction", "label"}
    unknown = sorted(set(query) - known)
    if unknown:
        errors.append(f"unknown parameter(s): {', '.join(unknown)}")
    model = query.get("model")
    if not model:
        errors.append("model is required")
    fmt = query.get("format") or "parquet"
    if fmt not in FORMATS:
        errors.append(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    bounds = {}
    for name in ("since", "until"):
        if query.get(name):
            try:
                bounds[name] = parse_bound(query[name])
            except ValueError as exc:
                errors.append(f"{name}: {exc}")
    labelled = _flag(query.get("labelled_only"), "labelled_only", errors)
    if errors:
        raise ValidationError(DATASET_VALIDATION, errors)
    spec = _spec_of(store, model or "", query.get("deployment"))
    try:
        return ExportQuery(
            model or "", query.get("version") or None, query.get("deployment") or None,
            bounds.get("since"), bounds.get("until"), labelled,
            task=query.get("task") or (spec.task if spec and spec.task else "regression"),
            prediction=query.get("prediction") or (spec.prediction if spec else None),
            label=query.get("label") or (spec.label if spec else None)), fmt
    except DatasetError as exc:
        raise ValidationError(DATASET_VALIDATION, [str(exc)]) from None


def _spec_of(store: Store, model: str, deployment: str | None) -> Any:
    """The ``spec.quality`` that says how to read this model's predictions and labels."""
    for dep in store.list_deployments():
        if deployment is not None and dep.id != deployment:
            continue
        if dep.spec.quality is not None and (deployment is not None
                                             or dep.status.model_name == model):
            return quality_spec(dep.spec.quality)
    return None


async def dataset(request: web.Request) -> web.StreamResponse:
    from feedback.dataset import DatasetError, MissingExtra, export_file

    query, fmt = export_query(request.query, request.app[STORE])
    source = request.app[RECORDS]
    with tempfile.TemporaryDirectory(prefix="mlgate-dataset-") as tmp:
        path = Path(tmp) / f"dataset.{fmt}"
        try:
            await export_file(source.backend, source.prefix, query, path, fmt)
        except MissingExtra as exc:
            raise Unavailable(f"this mlgate cannot export data sets: {exc}") from None
        except DatasetError as exc:
            raise ValidationError(DATASET_VALIDATION, [str(exc)]) from None
        response = web.StreamResponse(headers={
            "Content-Type": CONTENT_TYPES[fmt],
            "Content-Disposition": f'attachment; filename="{query.model_name}.{fmt}"',
            "Content-Length": str(path.stat().st_size)})
        await response.prepare(request)
        async for chunk in _chunks(path):
            await response.write(chunk)
        await response.write_eof()
        return response


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    import asyncio

    with open(path, "rb") as f:
        while chunk := await asyncio.to_thread(f.read, CHUNK):
            yield chunk


def add_routes(app: web.Application, prefix: str) -> None:
    """``GET <prefix>/dataset`` over the app's :class:`~deploy.api.records.RecordSource`."""
    app.router.add_get(f"{prefix}/dataset", dataset)
