"""The Triton binding process's own logic, with the real wine model and no Triton."""

import subprocess
import sys
import sysconfig

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from predictor.triton.server import (
    EXIT_LOAD_FAILED,
    ModelFailed,
    _last_error_line,
    library_path,
    prepare,
)
from predictor.triton.tensors import TensorSpec
from tests.conftest import ROOT

ROWS = np.array([[7.0, 0.27, 0.36, 20.7, 0.045, 45.0, 170.0, 1.001, 3.0, 0.45, 8.8],
                 [6.3, 0.3, 0.34, 1.6, 0.049, 14.0, 132.0, 0.994, 3.3, 0.49, 9.5]],
                dtype=np.float32)


@pytest.fixture(scope="module")
def binding(demo_models):
    return prepare(str(demo_models / "wine-v1"), None, None)


def test_the_wine_model_as_triton_sees_it(binding):
    assert (binding.model_name, binding.model_version, binding.mlflow_version) == ("wine", 1, "1.0")
    assert binding.layout.single and binding.layout.tensors[0].shape == [-1, 11]
    assert binding.layout.column_names[:2] == ["fixed acidity", "volatile acidity"]
    assert binding.outputs == (TensorSpec("quality", "FP64", (1,)),)
    example = binding.example_request["inputs"][0]
    assert example["name"] == "input0" and example["shape"] == [3, 11]


def test_infer_answers_what_the_model_predicts(binding, demo_models):
    out = binding.infer(input0=ROWS)
    model = mlflow.pyfunc.load_model(str(demo_models / "wine-v1"))
    frame = pd.DataFrame(ROWS.astype(np.float64), columns=binding.layout.column_names)
    assert out["quality"].shape == (2, 1)
    np.testing.assert_allclose(out["quality"].ravel(), model.predict(frame), rtol=1e-12)


def test_a_failing_model_gives_a_short_message(binding):
    with pytest.raises(ModelFailed, match="model failed: Input X contains NaN") as err:
        binding.infer(input0=np.full((1, 11), np.nan, dtype=np.float32))
    assert err.value.__suppress_context__  # the model's traceback is not sent along


def test_the_running_pythons_lib_dir_comes_first(monkeypatch):
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/other")
    assert library_path() == f"{sysconfig.get_config_var('LIBDIR')}:/opt/other"


def test_the_telling_line_of_a_triton_log():
    log = ("I1125 model_lifecycle.cc:472] \"loading: wine:1\"\n"
           "E1125 backend_model.cc:692] \"ERROR: Failed to create instance\"\n"
           "E1125 model_lifecycle.cc:642] \"failed to load 'wine' version 1: bad\\nthing\"\n"
           "I1125 server.cc:305] \"Waiting for in-flight requests to complete.\"\n")
    assert _last_error_line(log) == (
        "E1125 model_lifecycle.cc:642] \"failed to load 'wine' version 1: bad | thing\"")
    assert _last_error_line("E1125 main.cc:257] \"failed to start HTTP service: in use\"") \
        .endswith("in use\"")
    assert _last_error_line("all fine\n") == ""


def run_binding(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "predictor.triton.server", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_a_model_that_cannot_be_served_exits_3_with_one_line(tmp_path, demo_models):
    done = run_binding("--model-uri", str(tmp_path / "missing"), "--state-dir",
                       str(tmp_path / "state"))
    assert done.returncode == EXIT_LOAD_FAILED
    assert done.stderr.strip().splitlines()[-1].startswith("triton_server: cannot serve model")
    import mlflow.sklearn
    from sklearn.dummy import DummyRegressor

    unsigned = tmp_path / "unsigned"
    mlflow.sklearn.save_model(DummyRegressor().fit([[1.0]], [1.0]), str(unsigned))
    done = run_binding("--model-uri", str(unsigned), "--state-dir", str(tmp_path / "state"))
    assert done.returncode == EXIT_LOAD_FAILED
    assert "needs a column-based model signature" in done.stderr.strip().splitlines()[-1]
    assert not list((tmp_path / "state").iterdir())  # nothing left behind
