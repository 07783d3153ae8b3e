"""Printing API objects as json, yaml, table or jsonpath=EXPR (odahuflowctl's formats).

The table columns are the SDK's (:mod:`mlgate.objects`), so a notebook shows what the CLI prints.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from jsonpath_ng.exceptions import JsonPathParserError
from jsonpath_ng.ext import parse as parse_jsonpath

from mlgate.objects import deployment_row, route_row, text_table

FORMATS = ("json", "yaml", "table", "jsonpath=EXPR")
Row = Callable[[dict[str, Any]], dict[str, str]]
__all__ = ["FORMATS", "OutputError", "check_format", "deployment_row", "render", "route_row"]


class OutputError(ValueError):
    """The output format or the jsonpath expression is not valid."""


def check_format(value: str) -> str:
    """argparse type for ``-o``."""
    name, _, expr = value.partition("=")
    if name not in ("json", "yaml", "table", "jsonpath") or (name == "jsonpath") != bool(expr):
        raise OutputError(f"invalid output format {value!r}; choose from {', '.join(FORMATS)}")
    if name == "jsonpath":
        _compile(expr)
    return value


def _compile(expr: str) -> Any:
    try:
        return parse_jsonpath(expr)
    except (JsonPathParserError, Exception) as exc:  # the parser raises several kinds
        raise OutputError(f"invalid jsonpath {expr!r}: {exc}") from None


def render(objects: Sequence[dict[str, Any]], fmt: str, row: Row) -> str:
    name, _, expr = fmt.partition("=")
    if name == "json":
        return json.dumps(list(objects), indent=2)
    if name == "yaml":
        return yaml.safe_dump(list(objects), sort_keys=False).rstrip("\n")
    if name == "table":
        return text_table([row(o) for o in objects])
    matches = [m.value for m in _compile(expr).find(list(objects))]
    if len(matches) == 1:
        value = matches[0]
        return value if isinstance(value, str) else json.dumps(value)
    return json.dumps(matches)
