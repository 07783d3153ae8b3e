"""``examples/notebooks/quickstart.ipynb`` runs end to end with nbclient against a real
``mlgate up`` (the SDK's whole tour: train, deploy, invoke, feedback, quality, route, data
set), and is committed without outputs."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import EXAMPLES, ROOT

pytestmark = pytest.mark.e2e
NOTEBOOK = ROOT / "examples" / "notebooks" / "quickstart.ipynb"


def test_the_notebook_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


def test_the_quickstart_notebook_runs_against_a_stack(mlgate, demo_models, tmp_path,
                                                      monkeypatch):
    stack = mlgate([])
    monkeypatch.setenv("MLGATE_URL", stack.url)
    monkeypatch.setenv("MLGATE_TOKEN", stack.token)
    monkeypatch.setenv("WINE_CSV", str(EXAMPLES / "wine-quality.csv"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    nbformat.write(nb, tmp_path / "executed.ipynb")  # to look at when it fails
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for o in outputs)
    assert "wine-nb-v1 MAE" in text and "wine-nb-v2" in text
    assert "Model deployment wine-nb-v2 was deleted" in text
    assert (tmp_path / "models" / "wine-nb-1" / "MLmodel").exists()
