"""What ``mlgate model invoke`` sends, by predictor — pure."""

import orjson
import pytest

from mlgate.v2 import (
    InvokeRequestError,
    V2Input,
    build_invoke_request,
    infer_body,
    outputs_by_name,
    v2_input_from_openapi,
)

OPENAPI = {"x-mlgate": {"model_name": "wine", "input_columns": ["a", "b", "c"],
                        "inputs": [{"name": "input0", "datatype": "FP32", "shape": [-1, 3]}]}}


def test_odahu_deployments_get_the_file_unchanged():
    req = build_invoke_request("odahu-ml-server", b'{"columns": ["a"], "data": [[1]]}')
    assert req.path == "/api/model/invoke" and req.body == b'{"columns": ["a"], "data": [[1]]}'
    assert req.headers == {"Content-Type": "application/json"}


def test_a_v2_body_passes_through_byte_for_byte():
    body = b'{"inputs": [{"name": "input0", "shape": [1, 3], "datatype": "FP32", "data": [1,2,3]}]}'
    req = build_invoke_request("triton", body, model_name="wine")
    assert req.path == "/v2/models/wine/infer" and req.body is body
    assert build_invoke_request("triton", body, model_name="wine",
                                model_version="2").path == "/v2/models/wine/versions/2/infer"


def test_columns_and_rows_become_one_tensor_in_the_models_order():
    req = build_invoke_request("triton", b'{"columns": ["c", "a", "b"], "data": [[3, 1, 2]]}',
                               openapi=OPENAPI)
    assert req.path == "/v2/models/wine/infer"
    assert orjson.loads(req.body) == {"inputs": [{"name": "input0", "shape": [1, 3],
                                                  "datatype": "FP32", "data": [[1, 2, 3]]}]}
    split = build_invoke_request(
        "triton", b'{"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3]]}}',
        model_name="wine")
    assert orjson.loads(split.body)["inputs"][0]["data"] == [[1, 2, 3]]


def test_rows_without_column_names_are_taken_in_order():
    body = infer_body(None, [[1, 2], [3, 4]])
    assert body["inputs"][0] == {"name": "input0", "shape": [2, 2], "datatype": "FP32",
                                 "data": [[1, 2], [3, 4]]}


@pytest.mark.parametrize("body, message", [
    (b"not json", "not JSON"),
    (b'{"rows": []}', "expected a KServe v2 body"),
    (b'{"columns": ["a", "b", "x"], "data": [[1, 2, 3]]}',
     "unknown columns: x; missing columns: c"),
    (b'{"data": [[1, 2], [3]]}', "different lengths"),
    (b'{"columns": ["a"], "data": [[1, 2]]}', "1 columns but rows of 2 values"),
    (b'{"data": [[1, 2]]}', "rows have 2 values, the model takes 3 columns"),
    (b'{"data": []}', "non-empty list of rows"),
])
def test_bad_files_are_named(body, message):
    with pytest.raises(InvokeRequestError, match=message):
        build_invoke_request("triton", body, openapi=OPENAPI)


def test_a_triton_deployment_needs_its_model_name():
    with pytest.raises(InvokeRequestError, match="model name is unknown"):
        build_invoke_request("triton", b'{"inputs": []}')


def test_input_spec_from_openapi_and_defaults():
    assert v2_input_from_openapi(OPENAPI) == V2Input("input0", "FP32", ("a", "b", "c"))
    assert v2_input_from_openapi(None) == V2Input()


def test_outputs_by_name_flattens_data():
    answer = {"outputs": [{"name": "quality", "shape": [2, 1], "data": [[5.9], [6.1]]},
                          {"name": "empty"}]}
    assert outputs_by_name(answer) == {"quality": [5.9, 6.1], "empty": []}
