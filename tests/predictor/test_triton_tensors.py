"""Signature columns -> Triton tensors and back, without Triton."""

import numpy as np
import pandas as pd
import pytest

from predictor.schema import Column
from predictor.triton.tensors import (
    InputLayout,
    TensorPlanError,
    TensorSpec,
    example_request,
    model_input,
    output_tensors,
    plan_inputs,
    plan_outputs,
    prediction_columns,
    triton_model_name,
    triton_model_version,
)

WINE = [Column(n, "double") for n in ("fixed acidity", "volatile acidity", "pH")]


def test_numeric_columns_become_one_fp32_tensor_like_odahus_example():
    layout = plan_inputs(WINE)
    assert layout.single
    assert layout.tensors == (TensorSpec("input0", "FP32", (3,)),)
    assert layout.tensors[0].shape == [-1, 3]
    assert layout.column_names == ["fixed acidity", "volatile acidity", "pH"]


def test_integer_only_columns_keep_an_integer_tensor():
    assert plan_inputs([Column("a", "long"), Column("b", "integer")]).tensors[0].datatype == "INT64"
    assert plan_inputs([Column("a", "integer")]).tensors[0].datatype == "INT32"
    mixed = plan_inputs([Column("a", "long"), Column("b", "float")])
    assert mixed.single and mixed.tensors[0].datatype == "FP32"


def test_other_columns_get_one_tensor_each_with_their_own_type():
    layout = plan_inputs([Column("city", "string"), Column("n", "long"), Column("ok", "boolean"),
                          Column("when", "datetime"), Column("x", "double")])
    assert not layout.single
    assert [(t.name, t.datatype, t.shape) for t in layout.tensors] == [
        ("city", "BYTES", [-1, 1]), ("n", "INT64", [-1, 1]), ("ok", "BOOL", [-1, 1]),
        ("when", "BYTES", [-1, 1]), ("x", "FP64", [-1, 1])]


@pytest.mark.parametrize("columns", [None, []])
def test_a_model_without_column_signature_is_refused(columns):
    with pytest.raises(TensorPlanError, match="column-based model signature"):
        plan_inputs(columns)


def test_array_columns_are_refused_by_name():
    with pytest.raises(TensorPlanError, match="'vec'"):
        plan_inputs([Column("a", "double"), Column("vec", "any")])


def test_single_tensor_to_model_input_fast_path_and_frame():
    layout = plan_inputs(WINE)
    tensor = np.array([[7.0, 0.27, 3.0], [6.0, 0.3, 3.1]], dtype=np.float32)
    array = model_input(layout, {"input0": tensor}, np.float64, "F")
    assert array.dtype == np.float64 and array.flags.f_contiguous and array.shape == (2, 3)
    np.testing.assert_array_equal(array, tensor.astype(np.float64))
    mixed = plan_inputs([Column("n", "long"), Column("x", "double")])
    frame = model_input(mixed, {"input0": np.array([[3, 0.5]], dtype=np.float32)})
    assert list(frame.columns) == ["n", "x"]
    assert frame["n"].dtype == np.int64 and frame["n"][0] == 3 and frame["x"][0] == 0.5


def test_per_column_tensors_to_a_typed_frame():
    layout = plan_inputs([Column("city", "string"), Column("when", "datetime"),
                          Column("blob", "binary"), Column("ok", "boolean")])
    frame = model_input(layout, {
        "city": np.array([[b"Lyon"], [b"Graz"]], dtype=object),
        "when": np.array([[b"2024-01-02T03:04:05"], [b"2025-01-01"]], dtype=object),
        "blob": np.array([[b"\x00\x01"], [b""]], dtype=object),
        "ok": np.array([[True], [False]]),
    })
    assert frame["city"].tolist() == ["Lyon", "Graz"]
    assert frame["when"][0] == pd.Timestamp("2024-01-02T03:04:05")
    assert frame["blob"][0] == b"\x00\x01" and frame["ok"].tolist() == [True, False]


@pytest.mark.parametrize("prediction, expected", [
    (np.array([1.0, 2.0]), [[1.0, 2.0]]),
    (np.array([[1.0, 3.0], [2.0, 4.0]]), [[1.0, 2.0], [3.0, 4.0]]),
    (pd.Series([5, 6]), [[5, 6]]),
    (pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), [[1, 2], ["x", "y"]]),
])
def test_prediction_columns(prediction, expected):
    assert [c.tolist() for c in prediction_columns(prediction)] == expected


def test_outputs_from_the_example_prediction_named_by_the_signature():
    specs = plan_outputs(np.array([5.9, 6.1]), [Column("quality", "double")])
    assert specs == (TensorSpec("quality", "FP64", (1,)),)
    specs = plan_outputs(pd.DataFrame({"label": ["a"], "p": np.array([0.5], np.float32)}), None)
    assert specs == (TensorSpec("prediction_0", "BYTES", (1,)),
                     TensorSpec("prediction_1", "FP32", (1,)))
    assert plan_outputs(None, [Column("y", "long")]) == (TensorSpec("y", "INT64", (1,)),)
    with pytest.raises(TensorPlanError):
        plan_outputs(None, None)


def test_output_tensors_shape_types_and_mismatch():
    specs = (TensorSpec("quality", "FP64", (1,)),)
    out = output_tensors(np.array([5.9, 6.1]), specs)
    assert out["quality"].shape == (2, 1) and out["quality"].dtype == np.float64
    text = output_tensors(pd.Series(["a", "b"]), (TensorSpec("label", "BYTES", (1,)),))
    assert text["label"].tolist() == [[b"a"], [b"b"]]
    with pytest.raises(ValueError, match="returned 2 output column"):
        output_tensors(np.zeros((2, 2)), specs)


def test_example_request_is_a_v2_body_in_signature_order():
    layout = plan_inputs(WINE)
    body = example_request(layout, ["pH", "fixed acidity", "volatile acidity"],
                           [[3.0, 7.0, 0.27]])
    assert body == {"inputs": [{"name": "input0", "shape": [1, 3], "datatype": "FP32",
                                "data": [[7.0, 0.27, 3.0]]}]}
    per_column = InputLayout((TensorSpec("c", "BYTES", (1,)), TensorSpec("n", "INT64", (1,))),
                             (Column("c", "string"), Column("n", "long")), False)
    assert example_request(per_column, None, [["x", 1]])["inputs"][1] == {
        "name": "n", "shape": [1, 1], "datatype": "INT64", "data": [[1]]}


@pytest.mark.parametrize("version, expected", [
    ("1.0", 1), ("2", 2), ("3.0.0", 3), ("v4", 4), ("1.5", 1), ("0", 1), ("latest", 1)])
def test_triton_versions_are_positive_integers(version, expected):
    assert triton_model_version(version) == expected


def test_triton_model_names():
    assert triton_model_name("wine") == "wine"
    assert triton_model_name("my model/v1") == "my-model-v1"
    assert triton_model_name("***") == "model"
