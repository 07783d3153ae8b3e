"""The OpenAPI document of a Triton model, from v2 metadata — pure."""

import json

from predictor.triton.openapi import build_triton_openapi

METADATA = {"name": "wine", "versions": ["1"], "platform": "python",
            "inputs": [{"name": "input0", "datatype": "FP32", "shape": [-1, 3]}],
            "outputs": [{"name": "quality", "datatype": "FP64", "shape": [-1, 1]}]}
REQUEST = {"inputs": [{"name": "input0", "shape": [1, 3], "datatype": "FP32",
                       "data": [[7.0, 0.27, 3.0]]}]}
RESPONSE = {"model_name": "wine", "model_version": "1",
            "outputs": [{"name": "quality", "datatype": "FP64", "shape": [1, 1], "data": [5.9]}]}


def build(**kw):
    args = dict(model_version="1", input_columns=["fixed acidity", "volatile acidity", "pH"],
                example_request=REQUEST, example_response=RESPONSE)
    args.update(kw)
    return build_triton_openapi(METADATA, **args)


def test_paths_are_the_models_v2_endpoints():
    doc = build()
    assert doc["openapi"] == "3.0.3"
    assert doc["info"]["title"] == "wine" and doc["info"]["version"] == "1"
    assert set(doc["paths"]) == {"/v2/models/wine/infer", "/v2/models/wine",
                                 "/v2/models/wine/ready", "/v2/health/ready", "/v2/health/live",
                                 "/api/model/info"}
    json.dumps(doc)  # JSON-ready


def test_infer_schema_names_tensors_datatypes_shapes_and_columns():
    post = build()["paths"]["/v2/models/wine/infer"]["post"]
    media = post["requestBody"]["content"]["application/json"]
    assert media["example"] == REQUEST
    tensor = media["schema"]["properties"]["inputs"]["items"]["oneOf"][0]
    assert tensor["properties"]["name"]["enum"] == ["input0"]
    assert tensor["properties"]["datatype"]["enum"] == ["FP32"]
    assert tensor["properties"]["shape"]["description"] == "declared shape [any, 3]"
    assert "fixed acidity, volatile acidity, pH" in tensor["description"]
    assert tensor["properties"]["data"]["items"]["anyOf"][0] == {"type": "number"}
    ok = post["responses"]["200"]["content"]["application/json"]
    assert ok["example"] == RESPONSE
    out = ok["schema"]["properties"]["outputs"]["items"]["oneOf"][0]
    assert out["properties"]["name"]["enum"] == ["quality"]
    assert {"400", "500"} <= set(post["responses"])


def test_catalog_block_and_examples_flag():
    meta = build()["x-mlgate"]
    assert meta["predictor"] == "triton" and meta["has_examples"] is True
    assert meta["inputs"] == METADATA["inputs"] and meta["outputs"] == METADATA["outputs"]
    bare = build(example_request=None, example_response=None, input_columns=None)
    assert bare["x-mlgate"]["has_examples"] is False
    media = bare["paths"]["/v2/models/wine/infer"]["post"]["requestBody"]["content"]
    assert "example" not in media["application/json"]
