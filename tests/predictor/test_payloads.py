"""Wire formats: odahu invoke and MLflow invocations bodies in, responses out."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

from predictor.inputs import InputError
from predictor.payloads import (
    csv_input,
    invocations_body,
    invocations_input,
    invoke_body,
    invoke_input,
    parse_json,
    prediction_table,
)


def test_parse_json() -> None:
    assert parse_json(b'{"a": 1}') == {"a": 1}
    with pytest.raises(InputError, match="request body is not valid JSON"):
        parse_json(b"{nope")
    with pytest.raises(InputError, match="request body is empty"):
        parse_json(b"")


def test_invoke_input() -> None:
    assert invoke_input({"columns": ["a"], "data": [[1]]}) == (["a"], [[1]])
    assert invoke_input({"data": [[1]], "columns": ["a"]}) == (["a"], [[1]])
    assert invoke_input({"data": [[1]]}) == (None, [[1]])


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2], "request body must be a JSON object"),
        ("text", "got a string"),
        ({"columns": ["a"]}, 'request body has no "data"'),
    ],
)
def test_invoke_input_refusals(payload: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        invoke_input(payload)


ROWS = [[1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize(
    "payload",
    [
        {"dataframe_split": {"columns": ["a", "b"], "data": ROWS}},
        {"dataframe_split": {"columns": ["a", "b"], "index": [0, 1], "data": ROWS}},
        {"dataframe_records": [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]},
        {"instances": [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]},
        {"inputs": {"a": [1.0, 3.0], "b": [2.0, 4.0]}},
        {"inputs": [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}], "params": {"x": 1}},
    ],
)
def test_invocations_formats_name_their_columns(payload: dict) -> None:
    assert invocations_input(payload) == (["a", "b"], ROWS)


def test_invocations_rows_without_names_are_in_signature_order() -> None:
    assert invocations_input({"instances": ROWS}) == (None, ROWS)
    assert invocations_input({"inputs": {"a": 1.0, "b": 2.0}}) == (["a", "b"], [[1.0, 2.0]])
    assert invocations_input({"dataframe_split": {"columns": ["a"], "data": [1, 2]}}) == (
        ["a"],
        [[1], [2]],
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1], "must be a JSON dictionary with exactly one of the input fields"),
        ({"data": []}, "Received dictionary with input fields: ['data']"),
        ({"inputs": [], "instances": []}, "exactly one of the input fields"),
        ({"dataframe_split": [[1]]}, "Dataframe split format must be a dictionary. Got a list."),
        ({"dataframe_split": {"columns": ["a"]}}, "must have 'data' field"),
        ({"dataframe_split": {"data": [], "extra": 1}}, "must have 'data' field"),
        ({"dataframe_records": {"a": 1}}, "Dataframe records format must be a list of records"),
        ({"dataframe_records": [{"a": 1}, {"b": 1}]}, 'record 1 has no "a"'),
        ({"dataframe_records": [{"a": 1}, {"a": 1, "b": 1}]}, "record 1 has columns"),
        ({"dataframe_records": [{"a": 1}, 5]}, "each record must be a JSON object; record 1"),
        ({"inputs": {"a": [1, 2], "b": [1]}}, "length of values for each input/column"),
        ({"inputs": {"a": [1, 2], "b": 1}}, "every column must be a list of values"),
        ({"instances": 5}, '"instances" must be a list of rows'),
    ],
)
def test_invocations_refusals(payload: object, message: str) -> None:
    with pytest.raises(InputError) as caught:
        invocations_input(payload)
    assert message in str(caught.value)


def test_csv_input() -> None:
    columns, rows = csv_input(b"a,b\n1.5,2\n3,\n")
    assert columns == ["a", "b"]
    assert rows == [[1.5, 2.0], [3.0, None]]
    with pytest.raises(InputError, match="not a CSV table"):
        csv_input(b"")


def test_prediction_table_flattens_one_output_per_row() -> None:
    assert prediction_table(np.array([6.0, 5.5]), ("quality",)) == ([6.0, 5.5], ["quality"])
    assert prediction_table(np.array([[6.0], [5.5]]), ("quality",)) == ([6.0, 5.5], ["quality"])
    assert prediction_table(np.array([1, 2]), ()) == ([1, 2], ["prediction"])
    assert prediction_table(pd.Series([1.0], name="y"), ()) == ([1.0], ["y"])
    assert prediction_table(pd.DataFrame({"p": [0.5]}), ()) == ([0.5], ["p"])
    assert prediction_table([3], ("q",)) == ([3], ["q"])


def test_prediction_table_keeps_rows_for_several_outputs() -> None:
    assert prediction_table(np.array([[0.2, 0.8]]), ("no", "yes")) == (
        [[0.2, 0.8]],
        ["no", "yes"],
    )
    assert prediction_table(np.array([[0.2, 0.8]]), ()) == (
        [[0.2, 0.8]],
        ["prediction_0", "prediction_1"],
    )
    assert prediction_table(pd.DataFrame({"a": [1], "b": ["x"]}), ()) == ([[1, "x"]], ["a", "b"])


def test_invoke_body_is_the_seed_shape() -> None:
    body = orjson.loads(invoke_body(np.array([6.0]), ("quality",)))
    assert body == {"prediction": [6.0], "columns": ["quality"]}
    assert list(body) == ["prediction", "columns"]


def test_invocations_body_matches_mlflow() -> None:
    assert orjson.loads(invocations_body(np.array([6.0, 5.0]))) == {"predictions": [6.0, 5.0]}
    assert orjson.loads(invocations_body(pd.DataFrame({"a": [1], "b": [2.5]}))) == {
        "predictions": [{"a": 1, "b": 2.5}]
    }
    assert orjson.loads(invocations_body(pd.Series([1.5], name="y"))) == {
        "predictions": [{"y": 1.5}]
    }
    assert orjson.loads(invocations_body([np.float32(0.5)])) == {"predictions": [0.5]}
