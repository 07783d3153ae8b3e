"""The rollout core stays pure: standard library, numpy and scipy only, and its own modules."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import deploy.control.analysis

CONTROL = Path(deploy.control.analysis.__file__).parent
MODULES = [
    "analysis",
    "analysis_metrics",
    "durations",
    "canary_stats",
    "verdicts",
    "judge",
    "rollout_state",
    "rollout",
    "rollout_manual",
    "rollout_view",
]
OWN = {f".{name}" for name in MODULES}
# Imports that would mean I/O or a clock in a decision.
FORBIDDEN = {"time", "socket", "asyncio", "os", "io", "subprocess", "random"}


def imported(module: str) -> set[str]:
    tree = ast.parse((CONTROL / f"{module}.py").read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


@pytest.mark.parametrize("module", MODULES)
def test_imports_only_the_standard_library_numpy_scipy_and_siblings(module: str) -> None:
    for name in imported(module):
        top = name.split(".")[0]
        if name in OWN or name == "__future__":
            continue
        assert top in {"numpy", "scipy"} or top in sys.stdlib_module_names, name
        assert top not in FORBIDDEN, f"{module} imports {name}"


@pytest.mark.parametrize("module", MODULES)
def test_no_clock_is_read(module: str) -> None:
    tree = ast.parse((CONTROL / f"{module}.py").read_text())
    calls = {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert not calls & {"now", "utcnow", "today", "monotonic", "time"}
