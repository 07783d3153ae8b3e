"""The SDK's API reference (docs/sdk/, generated from docstrings by pdoc) is complete and
current: every public name has a docstring, and ``make docs`` would change nothing."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import mlgate
from tests.conftest import ROOT

PDOC = Path(sys.executable).parent / "pdoc"


def public_members():
    for name in mlgate.__all__:
        obj = getattr(mlgate, name)
        yield name, obj
        if inspect.isclass(obj) and not issubclass(obj, Exception):
            for member, value in vars(obj).items():
                if not member.startswith("_") and (callable(value)
                                                   or isinstance(value, property)):
                    yield f"{name}.{member}", value


def test_every_public_name_has_a_docstring():
    missing = [name for name, obj in public_members()
               if not inspect.getdoc(obj.fget if isinstance(obj, property) else obj)]
    assert missing == []


def test_the_committed_reference_is_what_make_docs_generates(tmp_path):
    subprocess.run([str(PDOC), "mlgate", "--docformat", "restructuredtext", "--no-search",
                    "--no-show-source", "-o", str(tmp_path)], cwd=ROOT, check=True, timeout=120)
    committed = ROOT / "docs" / "sdk"
    for page in ("index.html", "mlgate.html"):
        assert (tmp_path / page).read_text() == (committed / page).read_text(), \
            f"docs/sdk/{page} is out of date: run make docs"
