"""InputPlan: column order, types and every refusal, without a model or a socket."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from predictor.inputs import InputError, InputPlan
from predictor.schema import Column

WINE = [
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
]
SEED_COLUMNS = sorted(WINE, key=str.lower)  # the seed document sends them alphabetically
SEED_ROW = [12.8, 0.029, 0.48, 0.98, 6.2, 29, 3.33, 1.2, 0.39, 75, 0.66]


@pytest.fixture
def wine() -> InputPlan:
    return InputPlan([Column(name, "double") for name in WINE])


@pytest.fixture
def mixed() -> InputPlan:
    return InputPlan(
        [
            Column("age", "long"),
            Column("score", "double"),
            Column("name", "string"),
            Column("member", "boolean"),
            Column("note", "string", required=False),
        ]
    )


def test_seed_request_is_reordered_into_signature_order(wine: InputPlan) -> None:
    batch = wine.convert(SEED_COLUMNS, [SEED_ROW])
    assert isinstance(batch, np.ndarray)
    assert batch.dtype == np.float64
    by_name = dict(zip(SEED_COLUMNS, SEED_ROW, strict=True))
    assert batch.tolist() == [[float(by_name[n]) for n in WINE]]


def test_signature_order_and_omitted_columns_give_the_same_array(wine: InputPlan) -> None:
    row = [7.0, 0.27, 0.36, 20.7, 0.045, 45, 170, 1.001, 3.0, 0.45, 8.8]
    named = wine.convert(WINE, [row, row])
    positional = wine.convert(None, [row, row])
    assert np.array_equal(named, positional)
    assert named.shape == (2, 11)


def test_the_same_column_order_is_planned_once(wine: InputPlan) -> None:
    wine.convert(SEED_COLUMNS, [SEED_ROW])
    wine.convert(list(SEED_COLUMNS), [SEED_ROW])
    assert len(wine._orders) == 1


def test_integers_are_numbers(wine: InputPlan) -> None:
    batch = wine.convert(None, [[0] * 11])
    assert batch.dtype == np.float64 and not batch.any()


def test_frame_names_the_columns(wine: InputPlan) -> None:
    frame = wine.frame(wine.convert(None, [SEED_ROW]))
    assert list(frame.columns) == WINE


@pytest.mark.parametrize(
    ("columns", "rows", "message"),
    [
        (None, {"a": 1}, '"data" must be a list of rows'),
        (None, [], '"data" has no rows'),
        (None, [SEED_ROW, 5], '"data" must be a list of rows, each a list of values; row 1 is 5'),
        (None, [SEED_ROW, SEED_ROW[:3]], "row 1 has 3 values, expected 11 (one per column)"),
        ("pH", [SEED_ROW], '"columns" must be a list of column names'),
        ([1, 2], [SEED_ROW], '"columns" must be a list of column names (strings)'),
        (
            [*WINE[:-1], "pH"],
            [SEED_ROW],
            'duplicate columns: "pH"',
        ),
        (
            [*WINE[:-1], "alcool"],
            [SEED_ROW],
            'unknown columns: "alcool"; missing columns: "alcohol"; the model takes',
        ),
        (WINE[:-2], [SEED_ROW[:9]], 'missing columns: "sulphates", "alcohol"'),
        (
            WINE,
            [[*SEED_ROW[:8], "abc", *SEED_ROW[9:]]],
            'column "pH": expected a number, got "abc" (row 0)',
        ),
        (WINE, [SEED_ROW, [*SEED_ROW[:10], None]], 'column "alcohol": expected a number, got null'),
        (WINE, [[True, *SEED_ROW[1:]]], 'column "fixed acidity": expected a number, got true'),
        (WINE, [[[1], *SEED_ROW[1:]]], 'column "fixed acidity": expected a number, got [1]'),
        (WINE, [[10**400, *SEED_ROW[1:]]], "a value does not fit its column"),
    ],
)
def test_refusals_name_the_problem(
    wine: InputPlan, columns: object, rows: object, message: str
) -> None:
    with pytest.raises(InputError) as caught:
        wine.convert(columns, rows)
    assert message in str(caught.value)


def test_bad_value_is_named_by_the_request_column_in_any_order(wine: InputPlan) -> None:
    row = list(SEED_ROW)
    row[SEED_COLUMNS.index("pH")] = "abc"
    with pytest.raises(InputError, match=r'column "pH": expected a number, got "abc"'):
        wine.convert(SEED_COLUMNS, [row])


def test_long_values_are_shortened_in_messages(wine: InputPlan) -> None:
    with pytest.raises(InputError) as caught:
        wine.convert(None, [["x" * 500, *SEED_ROW[1:]]])
    assert len(str(caught.value)) < 150


def test_mixed_types_give_a_typed_frame(mixed: InputPlan) -> None:
    frame = mixed.convert(
        ["name", "member", "age", "score"], [["ann", True, 41, 2], ["bob", False, 7.0, 0.5]]
    )
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["age", "score", "name", "member", "note"]
    assert frame["age"].dtype == np.int64 and frame["age"].tolist() == [41, 7]
    assert frame["score"].dtype == np.float64 and frame["score"].tolist() == [2.0, 0.5]
    assert frame["member"].dtype == np.bool_
    assert frame["name"].tolist() == ["ann", "bob"]
    assert frame["note"].isna().all()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([4.5, 1.0, "ann", True, None], 'column "age": expected an integer, got 4.5'),
        ([2**64, 1.0, "ann", True, None], 'column "age": expected an integer'),
        ([None, 1.0, "ann", True, None], 'column "age": expected an integer, got null'),
        ([4, 1.0, 5, True, None], 'column "name": expected a string, got 5'),
        ([4, 1.0, "ann", 1, None], 'column "member": expected true or false, got 1'),
        ([4, 1.0, "ann", True, 3], 'column "note": expected a string, got 3'),
    ],
)
def test_mixed_refusals(mixed: InputPlan, row: list, message: str) -> None:
    with pytest.raises(InputError) as caught:
        mixed.convert(None, [row])
    assert message in str(caught.value)


def test_optional_values_may_be_null(mixed: InputPlan) -> None:
    frame = mixed.convert(None, [[4, 1.0, "ann", True, None]])
    assert frame["note"].isna().all()


def test_integer_plan_is_an_int_array() -> None:
    plan = InputPlan([Column("a", "long"), Column("b", "long")])
    batch = plan.convert(["b", "a"], [[1, 2], [3.0, 4]])
    assert batch.dtype == np.int64
    assert batch.tolist() == [[2, 1], [4, 3]]
    with pytest.raises(InputError, match=r'column "b": expected an integer, got 1\.5'):
        plan.convert(["b", "a"], [[1.5, 2]])


def test_32_bit_integer_range() -> None:
    plan = InputPlan([Column("a", "integer")])
    assert plan.convert(None, [[2**31 - 1]]).dtype == np.int32
    with pytest.raises(InputError, match='column "a": expected a 32-bit integer, got 2147483648'):
        plan.convert(None, [[2**31]])


def test_missing_optional_number_is_nan() -> None:
    plan = InputPlan([Column("a", "double"), Column("b", "double", required=False)])
    batch = plan.convert(["a"], [[1.5]])
    assert batch.shape == (1, 2)
    assert batch[0, 0] == 1.5 and np.isnan(batch[0, 1])


def test_float32_columns_round_like_pandas() -> None:
    plan = InputPlan([Column("a", "float"), Column("b", "float")])
    batch = plan.convert(None, [[0.1, 2]])
    assert batch.dtype == np.float32
    assert batch.tolist() == np.array([[0.1, 2]], dtype=np.float32).tolist()


def test_no_signature_passes_a_frame_through() -> None:
    plan = InputPlan(None)
    frame = plan.convert(["x", "y"], [[1, "a"], [2, "b"]])
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["x", "y"]
    assert plan.convert(None, [[1, 2]]).shape == (1, 2)
    with pytest.raises(InputError, match="row 0 has 1 values, expected 2"):
        plan.convert(["x", "y"], [[1]])


def test_tensor_signature_gives_an_array() -> None:
    plan = InputPlan(None, tensor_dtype=np.float32)
    batch = plan.convert(None, [[1, 2], [3, 4]])
    assert batch.dtype == np.float32 and batch.shape == (2, 2)
    with pytest.raises(InputError, match="does not fit the model's float32 input"):
        plan.convert(None, [["a", 2]])


def test_unnamed_columns_are_positional() -> None:
    plan = InputPlan([Column(None, "double"), Column(None, "double")])
    assert plan.convert(["whatever", "names"], [[1, 2]]).tolist() == [[1.0, 2.0]]


def test_binary_and_datetime_columns() -> None:
    plan = InputPlan([Column("blob", "binary"), Column("when", "datetime")])
    frame = plan.convert(None, [["aGk=", "2024-01-02T03:04:05"]])
    assert frame["blob"].tolist() == [b"hi"]
    assert frame["when"].iloc[0] == pd.Timestamp("2024-01-02T03:04:05")
    with pytest.raises(InputError, match='column "blob": expected a base64 string'):
        plan.convert(None, [["not base64!", "2024-01-02"]])
    with pytest.raises(InputError, match='column "when": expected a date-time string'):
        plan.convert(None, [["aGk=", "someday"]])
