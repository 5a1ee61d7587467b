"""The predicate language: compiled SQL agrees with the Python reference; bad input is named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claimready.controls.expr import (
    COUNT,
    EVER,
    KEV,
    ExpressionError,
    Predicate,
    column,
    compile_sql,
    evaluate_row,
    parse,
)

TYPES = {"a.flag": "bool", "a.other": "bool", "b.num": "number", "c.text": "text", "d.time": "time"}
STEP = datetime(2026, 5, 14, 3, tzinfo=UTC)

leaves = st.sampled_from(
    [
        "a.flag",
        "not a.other",
        "b.num >= 3",
        "b.num < 1.5",
        "c.text == 'x'",
        "c.text in ('x', 'y')",
        "c.text not in ('z',)",
        "age(d.time) <= hours(26)",
        "present(b.num)",
        "ever(a.flag)",
        "count(c.text) == 0",
        "kev(c.text, days(14)) == 0",
        "0 <= b.num <= 5",
    ]
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, children).map(lambda p: f"({p[0]}) and ({p[1]})"),
        st.tuples(children, children).map(lambda p: f"({p[0]}) or ({p[1]})"),
        children.map(lambda c: f"not ({c})"),
    )


expressions = st.recursive(leaves, _combine, max_leaves=6)
maybe = st.none() | st.booleans()
rows = st.fixed_dictionaries(
    {
        column("a.flag"): maybe,
        column("a.other"): maybe,
        column("a.flag", EVER): maybe,
        column("b.num"): st.none() | st.integers(-2, 8).map(float),
        column("c.text"): st.none() | st.sampled_from(["x", "y", "z"]),
        column("c.text", COUNT): st.none() | st.integers(0, 3),
        column("c.text", KEV): st.none()
        | st.lists(st.integers(0, 30).map(lambda d: STEP - timedelta(days=d)), max_size=3),
        column("d.time"): st.none() | st.integers(0, 60).map(lambda h: STEP - timedelta(hours=h)),
    }
)


def _sql_value(predicate: Predicate, row: dict[str, Any]) -> bool | None:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    names = list(row)
    select = ", ".join(f'? AS "{n}"' for n in names)
    sql = f"SELECT ({compile_sql(predicate)}) AS r FROM (SELECT ?::TIMESTAMPTZ AS t, {select})"  # noqa: S608
    params = [STEP, *[row[n] for n in names]]
    casts = {
        column("a.flag"): "BOOLEAN",
        column("a.other"): "BOOLEAN",
        column("a.flag", EVER): "BOOLEAN",
        column("b.num"): "DOUBLE",
        column("c.text"): "VARCHAR",
        column("c.text", COUNT): "BIGINT",
        column("c.text", KEV): "TIMESTAMPTZ[]",
        column("d.time"): "TIMESTAMPTZ",
    }
    for name, cast in casts.items():
        sql = sql.replace(f'? AS "{name}"', f'?::{cast} AS "{name}"')
    table = connection.execute(sql, params).to_arrow_table()
    value = table.to_pylist()[0]["r"]
    return None if value is None else bool(value)


@settings(max_examples=150, deadline=None)
@given(source=expressions, row=rows)
def test_compiled_sql_equals_python_reference(source: str, row: dict[str, Any]) -> None:
    predicate = parse(source, types=TYPES)
    expected = evaluate_row(predicate, {**row, "t": STEP})
    assert _sql_value(predicate, row) == expected


def test_three_valued_logic() -> None:
    predicate = parse("a.flag and b.num > 1", types=TYPES)
    assert evaluate_row(predicate, {"t": STEP, column("b.num"): 0.0}) is False
    assert evaluate_row(predicate, {"t": STEP, column("b.num"): 2.0}) is None
    assert evaluate_row(predicate, {"t": STEP, column("a.flag"): True, column("b.num"): 2.0})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("__import__('os')", "not allowed|unknown function"),
        ("a.flag + 1", "BinOp is not allowed"),
        ("x.y.z", "unknown signal 'x.y.z'"),
        ("flag", "not a signal"),
        ("b.num", "expected a true/false condition"),
        ("c.text > 'a'", "can only be compared"),
        ("d.time > 3", "compare times through age"),
        ("age(b.num) < 3", "age\\(\\) needs a time signal"),
        ("a.flag == 'yes'", "cannot compare a bool with a text"),
        ("lambda: 1", "Lambda is not allowed"),
        ("a.flag and", "not an expression"),
        ("c.text in b.num", "needs a non-empty tuple"),
        ("days(-1) > b.num", "non-negative"),
    ],
)
def test_rejects_outside_the_language(source: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message) as caught:
        parse(source, types=TYPES, where="pack.yaml: control x")
    assert "pack.yaml: control x" in str(caught.value)
