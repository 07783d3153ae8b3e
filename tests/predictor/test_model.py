"""Loading real MLflow models: the call strategy, identical predictions, identity, failures."""

from __future__ import annotations

import warnings
from pathlib import Path

import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from predictor.model import ModelLoadError, load_model
from predictor.payloads import invocations_body, invoke_body
from predictor.strategy import STRATEGY_PYFUNC, STRATEGY_SKLEARN_ARRAY, STRATEGY_SKLEARN_FRAME

REQS = ["scikit-learn", "mlflow"]  # explicit: no requirement inference while saving


def _frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "pH": rng.normal(3.2, 0.2, rows),
            "alcohol": rng.normal(10.5, 1.2, rows),
            "density": rng.normal(0.99, 0.003, rows),
        }
    )


def _target(x: pd.DataFrame) -> np.ndarray:
    return 2.0 * x["alcohol"].to_numpy() - 3.0 * x["pH"].to_numpy() + 0.1


class SumModel(mlflow.pyfunc.PythonModel):
    """A non-sklearn flavour: predictions are row sums."""

    def predict(self, context, model_input, params=None):
        return model_input.sum(axis=1).to_numpy()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    x = _frame(200)
    y = _target(x)
    paths: dict[str, Path] = {}

    def save(name: str, model: object, signature: object, example: object, **kw: object) -> None:
        paths[name] = root / name
        mlflow.sklearn.save_model(
            model,
            str(paths[name]),
            signature=signature,
            input_example=example,
            pip_requirements=REQS,
            **kw,
        )

    pipeline = Pipeline([("scale", StandardScaler()), ("model", Ridge(alpha=0.5))]).fit(x, y)
    save(
        "frame-fitted",
        pipeline,
        infer_signature(x, pd.Series(pipeline.predict(x), name="quality")),
        x.head(3),
        metadata={"model_name": "wine", "model_version": "7.1"},
    )

    plain = LinearRegression().fit(x.to_numpy(), y)
    save("array-fitted", plain, infer_signature(x, plain.predict(x.to_numpy())), x.head(2))

    mixed_x = x.assign(year=np.arange(200, dtype=np.int64) % 7 + 2015)
    mixed = LinearRegression().fit(mixed_x, y)
    save("mixed", mixed, infer_signature(mixed_x, mixed.predict(mixed_x)), mixed_x.head(2))

    labels = (y > np.median(y)).astype(np.int64)
    classifier = LogisticRegression().fit(x, labels)
    save(
        "proba",
        classifier,
        infer_signature(x, classifier.predict_proba(x)),
        x.head(2),
        pyfunc_predict_fn="predict_proba",
    )

    save("bare", LinearRegression().fit(x, y), None, None)

    paths["custom"] = root / "custom"
    mlflow.pyfunc.save_model(
        str(paths["custom"]),
        python_model=SumModel(),
        signature=infer_signature(x, x.sum(axis=1).to_numpy()),
        input_example=x.head(2),
        pip_requirements=REQS,
    )
    return paths


def _same_as_pyfunc(path: Path, frame: pd.DataFrame) -> None:
    """Our conversion + call path gives exactly what pyfunc gives, columns in any order."""
    model = load_model(str(path))
    reference = mlflow.pyfunc.load_model(str(path)).predict(frame)
    shuffled = list(reversed(frame.columns))
    rows = frame[shuffled].astype(object).to_numpy().tolist()
    ours = model.predict(model.plan.convert(shuffled, rows))
    assert type(ours) is type(reference)
    assert np.array_equal(np.asarray(ours), np.asarray(reference))
    assert invocations_body(ours) == invocations_body(reference)


def test_frame_fitted_sklearn_is_called_with_an_array(models: dict[str, Path]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        model = load_model(str(models["frame-fitted"]))  # adds its own, narrower filter
        assert model.strategy == STRATEGY_SKLEARN_ARRAY
        batch = model.plan.convert(None, [[3.1, 11.0, 0.99]])
        assert isinstance(batch, np.ndarray)
        with warnings.catch_warnings(record=True) as caught:
            model.predict(batch)
            warnings.warn("a real problem", UserWarning, stacklevel=1)
        assert [str(w.message) for w in caught] == ["a real problem"]


def test_frame_fitted_predictions_are_identical_to_pyfunc(models: dict[str, Path]) -> None:
    _same_as_pyfunc(models["frame-fitted"], _frame(300, seed=1))


def test_array_fitted_sklearn(models: dict[str, Path]) -> None:
    assert load_model(str(models["array-fitted"])).strategy == STRATEGY_SKLEARN_ARRAY
    _same_as_pyfunc(models["array-fitted"], _frame(50, seed=2))


def test_mixed_types_use_a_typed_frame(models: dict[str, Path]) -> None:
    model = load_model(str(models["mixed"]))
    assert model.plan.dtype is None
    assert model.strategy == STRATEGY_SKLEARN_FRAME
    frame = _frame(40, seed=3).assign(year=np.arange(40, dtype=np.int64) + 2000)
    _same_as_pyfunc(models["mixed"], frame)


def test_predict_fn_of_the_flavour_is_used(models: dict[str, Path]) -> None:
    model = load_model(str(models["proba"]))
    assert model.strategy == STRATEGY_SKLEARN_ARRAY
    _same_as_pyfunc(models["proba"], _frame(30, seed=4))
    output = model.predict(model.plan.convert(None, [[3.1, 11.0, 0.99]]))
    assert output.shape == (1, 2)


def test_other_flavours_go_through_pyfunc(models: dict[str, Path]) -> None:
    model = load_model(str(models["custom"]))
    assert model.strategy == STRATEGY_PYFUNC
    _same_as_pyfunc(models["custom"], _frame(20, seed=5))


def test_model_without_signature_or_example(models: dict[str, Path]) -> None:
    model = load_model(str(models["bare"]))
    assert model.strategy == STRATEGY_PYFUNC
    assert model.example is None
    assert model.openapi["x-mlgate"]["has_examples"] is False
    output = model.predict(model.plan.convert(["pH", "alcohol", "density"], [[3.1, 11.0, 0.99]]))
    assert invoke_body(output, model.outputs).startswith(b'{"prediction":[')


def test_identity_flags_win_over_metadata_over_directory(models: dict[str, Path]) -> None:
    meta = load_model(str(models["frame-fitted"]))
    assert (meta.name, meta.version) == ("wine", "7.1")
    flags = load_model(str(models["frame-fitted"]), name="red", version="9")
    assert (flags.name, flags.version) == ("red", "9")
    bare = load_model(str(models["array-fitted"]))
    assert (bare.name, bare.version) == ("array-fitted", "1.0")


def test_openapi_is_built_from_the_real_model(models: dict[str, Path]) -> None:
    model = load_model(f"file://{models['frame-fitted']}")
    doc = model.openapi
    assert doc["info"]["title"] == "wine" and doc["info"]["version"] == "7.1"
    invoke = doc["paths"]["/api/model/invoke"]["post"]
    request = invoke["requestBody"]["content"]["application/json"]["example"]
    assert request["columns"] == ["pH", "alcohol", "density"]
    assert len(request["data"]) == 3
    response = invoke["responses"]["200"]["content"]["application/json"]["example"]
    assert response["columns"] == ["quality"]
    rows = request["data"]
    expected = model.predict(model.plan.convert(request["columns"], rows)).tolist()
    assert response["prediction"] == expected
    assert doc["x-mlgate"]["has_examples"] is True


def test_outputs_are_named_by_the_signature(models: dict[str, Path]) -> None:
    assert load_model(str(models["frame-fitted"])).outputs == ("quality",)
    assert load_model(str(models["array-fitted"])).outputs == ()


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "nothing"))


def test_directory_without_mlmodel(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="is not an MLflow model"):
        load_model(str(tmp_path))


def test_corrupt_model_file(models: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MLmodel").write_text((models["array-fitted"] / "MLmodel").read_text())
    (broken / "model.skops").write_bytes(b"not a model")
    with pytest.raises(ModelLoadError) as caught:
        load_model(str(broken))
    assert "\n" not in str(caught.value) and str(caught.value)
