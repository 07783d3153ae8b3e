"""The feedback loop: the feedback endpoints, the live join of labels to predictions, quality
figures, and training data sets (``feedback.dataset``, the ``dataset`` extra)."""

from collections.abc import Callable

from aiohttp import web

from .handlers import (
    SDK_PATH,
    SEED_PATH,
    DurableWriter,
    FeedbackError,
    Respond,
    make_sdk_handler,
    make_seed_handler,
    parse_feedback,
    sdk_error_body,
    seed_error_body,
)
from .index import ANY_ROUTE, MIRROR_PREFIX, JoinLimits, QualityIndex
from .joiner import DeploymentInfo, Joiner, JoinerConfig
from .metrics import QualityCollector
from .openapi import openapi_paths, openapi_schemas
from .paths import PathError, compile_path
from .report import (
    NOT_CONFIGURED,
    ReportError,
    VariantSamples,
    deployment_document,
    describe,
    iso,
    variant_samples,
)
from .spec import CELL_SECONDS, FIELDS, TASKS, QualitySpec, window_text

AddRoute = Callable[..., object]
"""``add(method, path, handler, name=None)``, as ``app.router.add_route``."""


def add_routes(app: web.Application, writer: DurableWriter, add: AddRoute | None = None,
               respond: Respond | None = None) -> None:
    """Mount ``POST /feedback/model/`` (seed form) and ``POST /api/v1/feedback`` (ODAHU SDK).

    ``add``: how a route is added (default ``app.router.add_route``; the edge passes the
    gateway's, which also serves it on the fast data plane); ``respond``: how an answer is
    built (default an aiohttp JSON response). The handlers use only a request's
    ``headers`` and ``read()``, so either server can call them."""
    add = add or app.router.add_route
    seed = make_seed_handler(writer, respond)
    add("POST", SEED_PATH + "/", seed, name="feedback-seed")
    add("POST", SEED_PATH, seed)
    add("POST", SDK_PATH, make_sdk_handler(writer, respond), name="feedback-sdk")


__all__ = [
    "ANY_ROUTE",
    "CELL_SECONDS",
    "FIELDS",
    "MIRROR_PREFIX",
    "NOT_CONFIGURED",
    "SDK_PATH",
    "SEED_PATH",
    "TASKS",
    "DeploymentInfo",
    "DurableWriter",
    "FeedbackError",
    "JoinLimits",
    "Joiner",
    "JoinerConfig",
    "PathError",
    "QualityCollector",
    "QualityIndex",
    "QualitySpec",
    "ReportError",
    "Respond",
    "VariantSamples",
    "add_routes",
    "compile_path",
    "deployment_document",
    "describe",
    "iso",
    "openapi_paths",
    "openapi_schemas",
    "parse_feedback",
    "sdk_error_body",
    "seed_error_body",
    "variant_samples",
    "window_text",
]
