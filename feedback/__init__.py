"""The feedback endpoints: ground truth stored beside the logged prediction."""

from aiohttp import web

from .handlers import (
    SDK_PATH,
    SEED_PATH,
    DurableWriter,
    FeedbackError,
    make_sdk_handler,
    make_seed_handler,
    parse_feedback,
    sdk_error_body,
    seed_error_body,
)
from .openapi import openapi_paths, openapi_schemas


def add_routes(app: web.Application, writer: DurableWriter) -> None:
    """Mount ``POST /feedback/model/`` (seed form) and ``POST /api/v1/feedback`` (ODAHU SDK)."""
    seed = make_seed_handler(writer)
    app.router.add_post(SEED_PATH + "/", seed, name="feedback-seed")
    app.router.add_post(SEED_PATH, seed)
    app.router.add_post(SDK_PATH, make_sdk_handler(writer), name="feedback-sdk")


__all__ = [
    "SDK_PATH",
    "SEED_PATH",
    "DurableWriter",
    "FeedbackError",
    "add_routes",
    "openapi_paths",
    "openapi_schemas",
    "parse_feedback",
    "sdk_error_body",
    "seed_error_body",
]
