"""Objects to rows and back, per format: good rows, refused rows, unreadable objects."""

import pytest

from deploy.batch.formats import (
    UnreadableObject,
    columns_of,
    count_rows,
    read_output,
    read_table,
    write_table,
)

FORMATS = ("jsonl", "csv", "parquet", "odahu-json")


def test_csv_values_become_what_a_json_client_sends():
    data = b'"a","b","c"\n7,0.27,x\n"",1e3,nan\n1,2\n'
    table = read_table("csv", data)
    assert table.columns == ["a", "b", "c"]
    assert [list(r) for r in table.rows] == [[7, 0.27, "x"], [None, 1000.0, "nan"]]
    assert table.positions == [0, 1]
    assert [(b.position, b.reason) for b in table.bad] == [(2, "2 fields, the header has 3")]
    assert count_rows("csv", data) == 3


def test_jsonl_columns_are_the_union_in_order_and_bad_lines_keep_their_position():
    data = b'{"a": 1, "b": 2}\n\n[1, 2]\n{"b": 3, "c": 4}\nnot json\n'
    table = read_table("jsonl", data)
    assert table.columns == ["a", "b", "c"]
    assert table.rows == [[1, 2, None], [None, 3, 4]]
    assert table.positions == [0, 2]
    assert [b.position for b in table.bad] == [1, 3]
    assert count_rows("jsonl", data) == 4


def test_odahu_json_is_the_invoke_body():
    table = read_table("odahu-json", b'{"columns": ["a", "b"], "data": [[1, 2], [3], [4, 5]]}')
    assert table.rows == [[1, 2], [4, 5]] and table.positions == [0, 2]
    assert table.bad[0].position == 1


@pytest.mark.parametrize(("fmt", "data"), [
    ("csv", b"\xff\xfe garbage"), ("csv", b""), ("jsonl", b"\xff\n"),
    ("odahu-json", b"[1, 2]"), ("odahu-json", b"{"), ("parquet", b"PAR1 not parquet")])
def test_unreadable_objects(fmt, data):
    with pytest.raises(UnreadableObject):
        read_table(fmt, data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_outputs_round_trip_by_row_id(fmt):
    columns = ["row", "request_id", "quality"]
    rows = [[0, "j-a.csv-0", 5.721928325990948], [2, "j-a.csv-0", 6.0]]
    data = write_table(fmt, columns, columns_of(rows, 3))
    assert read_output(fmt, data) == (columns, {0: rows[0], 2: rows[1]})
    assert count_rows(fmt, data) == 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_output_with_no_row_is_still_an_object(fmt):
    data = write_table(fmt, ["row", "request_id"], columns_of([], 2))
    assert read_output(fmt, data)[1] == {}


@pytest.mark.parametrize("data", [
    b'"a","b","c"\n7,0.27,x\n6.3,1e3,y\n',                # numbers and text
    b"a,b\n1,\n,2\n",                                     # empty fields
    b"a,b\n7,0.27\n6,abc\n",                              # a malformed number among numbers
    b"a,b\n1,nan\n2,inf\n",                               # non-finite: kept as text
    b"a,b\ntrue,2020-01-01\nfalse,2020-01-02\n",          # no booleans, no dates
    b'a,b\n"x\ny",1\n\n3,4\n',                            # quoted newline, empty line
    b"a,b\n1,2,3\n4,5\n",                                 # a record too wide
    b"a,a\n1,2\n",                                        # duplicate names
    b"a\n",                                               # a header only
])
def test_the_arrow_csv_reader_agrees_with_the_standard_library(data):
    from deploy.batch.formats import _read_csv_arrow, _read_csv_stdlib

    slow = _read_csv_stdlib(data)
    fast = _read_csv_arrow(data)
    if fast is not None:  # None: it leaves the object to the standard library
        assert fast.columns == slow.columns
        assert [list(r) for r in fast.rows] == [list(r) for r in slow.rows]
        assert fast.positions == slow.positions and not slow.bad


def test_dropped_columns_never_reach_the_model():
    from deploy.batch.formats import without_columns

    table = without_columns(read_table("csv", b"a,quality,b\n1,6,2\n3,5,4\n"),
                            ["quality", "not-there"])
    assert table.columns == ["a", "b"] and [list(r) for r in table.rows] == [[1, 2], [3, 4]]
