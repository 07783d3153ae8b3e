"""Printing API objects as json, yaml, table or jsonpath=EXPR (odahuflowctl's formats)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from jsonpath_ng.exceptions import JsonPathParserError
from jsonpath_ng.ext import parse as parse_jsonpath

FORMATS = ("json", "yaml", "table", "jsonpath=EXPR")
Row = Callable[[dict[str, Any]], dict[str, str]]


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
        return table([row(o) for o in objects])
    matches = [m.value for m in _compile(expr).find(list(objects))]
    if len(matches) == 1:
        value = matches[0]
        return value if isinstance(value, str) else json.dumps(value)
    return json.dumps(matches)


def table(rows: Sequence[dict[str, str]]) -> str:
    if not rows:
        return "No resources found."
    headers = [h for h in rows[0] if any(r[h] for r in rows)]  # drop all-empty columns
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in headers}
    lines = ["  ".join(h.ljust(widths[h]) for h in headers).rstrip()]
    lines += ["  ".join(r[h].ljust(widths[h]) for h in headers).rstrip() for r in rows]
    return "\n".join(lines)


def deployment_row(d: dict[str, Any]) -> dict[str, str]:
    spec, status = d.get("spec", {}), d.get("status", {})
    model = ":".join(x for x in (status.get("modelName"), status.get("modelVersion")) if x)
    return {
        "ID": d.get("id", ""),
        "STATE": status.get("state", ""),
        "AVAILABLE": f"{status.get('availableReplicas', 0)}/{status.get('replicas', 0)}",
        "MIN-MAX": f"{spec.get('minReplicas', '')}-{spec.get('maxReplicas', '')}",
        "MODEL": model or "-",
        "IMAGE": spec.get("image", ""),
        "REASON": status.get("reason", ""),
    }


def route_row(r: dict[str, Any]) -> dict[str, str]:
    spec, status = r.get("spec", {}), r.get("status", {})
    targets = ", ".join(f"{t['mdName']}:{t.get('weight', 100)}"
                        for t in spec.get("modelDeployments", []))
    return {
        "ID": r.get("id", ""),
        "DEFAULT": "yes" if r.get("default") else "no",
        "URL PREFIX": spec.get("urlPrefix", ""),
        "TARGETS": targets,
        "MIRROR": spec.get("mirror") or "-",
        "STATE": status.get("state", ""),
        "EDGE URL": status.get("edgeUrl", ""),
    }
