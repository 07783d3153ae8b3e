"""JSONPath into a response body or a feedback document, compiled once per spec (pure).

Simple paths (``$``, ``$.prediction``, ``$.outputs[0].data``, ``$['a b']``) are walked
directly: they are what almost every spec says, and the live join reads one per
prediction and one per label. Anything else (wildcards, slices, filters) goes through
``jsonpath-ng``'s extended parser. Either way a path that matches one node answers that
node, one that matches several answers the list of them, and one that matches none
answers :data:`MISSING`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from jsonpath_ng.ext import parse as parse_jsonpath

MISSING: Any = object()
"""What a path answers when nothing in the document matches it."""

_STEP = re.compile(r"""\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\[(?:'([^']*)'|"([^"]*)")\]""")


class PathError(ValueError):
    """Not a JSONPath expression."""


def simple_steps(text: str) -> tuple[str | int, ...] | None:
    """The keys and indexes of a simple path (``$.a[0]['b c']``), or None for any other."""
    if not text.startswith("$"):
        return None
    steps: list[str | int] = []
    at = 1
    while at < len(text):
        m = _STEP.match(text, at)
        if m is None:
            return None
        name, index, quoted1, quoted2 = m.groups()
        if index is not None:
            steps.append(int(index))
        else:
            steps.append(name if name is not None else (quoted1 if quoted1 is not None
                                                        else quoted2))
        at = m.end()
    return tuple(steps)


@dataclass(frozen=True)
class JsonPath:
    text: str
    _steps: tuple[str | int, ...] | None = field(init=False, repr=False, compare=False)
    _compiled: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        steps = simple_steps(self.text)
        object.__setattr__(self, "_steps", steps)
        compiled = None
        if steps is None:
            try:
                compiled = parse_jsonpath(self.text)
            except Exception as exc:  # the parser raises several unrelated kinds
                raise PathError(f"{self.text!r} is not a JSONPath expression: {exc}") from None
        object.__setattr__(self, "_compiled", compiled)

    def find(self, doc: Any) -> Any:
        """The matched value, the list of matched values, or :data:`MISSING`."""
        if self._steps is not None:
            value = doc
            for step in self._steps:
                if isinstance(step, int):
                    if not isinstance(value, list) or step >= len(value):
                        return MISSING
                elif not isinstance(value, dict) or step not in value:
                    return MISSING
                value = value[step]
            return value
        matches = [m.value for m in self._compiled.find(doc)]
        if not matches:
            return MISSING
        return matches[0] if len(matches) == 1 else matches


def compile_path(text: Any) -> JsonPath:
    """``PathError`` unless ``text`` is a JSONPath expression starting at the root ``$``."""
    if not isinstance(text, str) or not text.strip().startswith("$"):
        raise PathError(f"must be a JSONPath expression starting with $, got {text!r}")
    return JsonPath(text.strip())
