"""The control predicate language: a safe, typed subset of Python expression syntax.

A predicate is parsed with :mod:`ast` in ``eval`` mode and only these nodes
are accepted (anything else is rejected with the offending part named):

- ``a and b``, ``a or b``, ``not a``
- comparisons ``==  !=  <  <=  >  >=`` (chains allowed) and ``x in ("A", "B")``,
  ``x not in (...)`` against a tuple or list of constants
- signal names, dotted and domain first: ``edr.healthy``, ``backup.last_success``
- constants: ``True``, ``False``, integers, decimals, strings
- durations: ``minutes(n)``, ``hours(n)``, ``days(n)`` (numbers of seconds)
- functions of one signal: ``age(s)`` (seconds from a time signal to the
  evaluation step), ``present(s)`` (a fresh value exists; never unknown),
  ``ever(s)`` (the asset was ever reported with ``s``: unknown when no asset
  of the tenant ever was), ``count(s)`` (values of a multi-valued signal in
  the asset's latest snapshot of that domain), ``kev(s)`` / ``kev(s, days(n))``
  (how many of those values were listed in the CISA KEV catalog at least n
  days before the step)

Logic is three-valued (Kleene): a signal without a fresh value is unknown,
``unknown and False`` is ``False``, ``unknown or True`` is ``True``, and a
comparison with unknown is unknown. True, false and unknown become ``pass``,
``fail`` and ``unverified``.

The same tree compiles to DuckDB SQL over a pivot with one row per asset and
step (:func:`compile_sql`) and evaluates in Python over one such row
(:func:`evaluate_row`); property tests hold the two equal.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from claimready.errors import InputError

BOOL, NUMBER, TEXT, TIME = "bool", "number", "text", "time"
DURATIONS = {"minutes": 60, "hours": 3600, "days": 86400}
SIGNAL_FUNCTIONS = ("age", "present", "ever", "count", "kev")
STEP_COLUMN = "t"

VALUE, EVER, COUNT, KEV = "value", "ever", "count", "kev"
_COMPARE = {
    ast.Eq: "=",
    ast.NotEq: "<>",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
}


class ExpressionError(InputError):
    """A predicate that is not in the language, named with where it came from."""


@dataclass(frozen=True, slots=True)
class Node:
    """A typed node of a compiled predicate."""

    op: str
    type: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Predicate:
    """A parsed, type-checked predicate and what it needs from the pivot."""

    source: str
    root: Node
    needs: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def signals(self) -> tuple[str, ...]:
        """Every signal the predicate reads, sorted."""
        return tuple(sorted(self.needs))


def column(signal: str, feature: str = VALUE) -> str:
    """The pivot column holding ``feature`` of ``signal``."""
    base = "s_" + signal.replace(".", "__")
    return base if feature == VALUE else f"{base}__{feature}"


class _Parser:
    def __init__(self, source: str, types: Mapping[str, str], where: str) -> None:
        self.source = source
        self.types = types
        self.where = where
        self.needs: dict[str, set[str]] = {}

    def fail(self, node: ast.AST | None, problem: str) -> ExpressionError:
        part = ast.get_source_segment(self.source, node) if node is not None else None
        shown = f" in {part!r}" if part and part != self.source else ""
        return ExpressionError(f"{problem}{shown} (predicate {self.source!r})", file=self.where)

    def need(self, signal: str, feature: str) -> None:
        self.needs.setdefault(signal, set()).add(feature)

    def parse(self) -> Predicate:
        try:
            tree = ast.parse(self.source.strip(), mode="eval")
        except SyntaxError as exc:
            raise self.fail(None, f"not an expression: {exc.msg}") from exc
        self.source = self.source.strip()
        root = self.boolean(tree.body)
        return Predicate(
            self.source, root, {k: frozenset(v) for k, v in sorted(self.needs.items())}
        )

    def boolean(self, node: ast.AST) -> Node:
        result = self.expr(node)
        if result.type != BOOL:
            raise self.fail(node, f"expected a true/false condition, found a {result.type}")
        return result

    def expr(self, node: ast.AST) -> Node:
        if isinstance(node, ast.BoolOp):
            op = "and" if isinstance(node.op, ast.And) else "or"
            return Node(op, BOOL, tuple(self.boolean(v) for v in node.values))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return Node("not", BOOL, (self.boolean(node.operand),))
        if isinstance(node, ast.Compare):
            return self.compare(node)
        return self.operand(node)

    def compare(self, node: ast.Compare) -> Node:
        parts: list[Node] = []
        left = self.operand(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                choices = self.choices(right_node, left)
                member = Node("in", BOOL, (left, choices))
                parts.append(Node("not", BOOL, (member,)) if isinstance(op, ast.NotIn) else member)
                continue
            if type(op) not in _COMPARE:
                raise self.fail(node, f"operator {type(op).__name__} is not allowed")
            right = self.operand(right_node)
            self.check_comparable(node, left, right, op)
            parts.append(Node("cmp", BOOL, (_COMPARE[type(op)], left, right)))
            left = right
        return parts[0] if len(parts) == 1 else Node("and", BOOL, tuple(parts))

    def check_comparable(self, node: ast.AST, left: Node, right: Node, op: ast.cmpop) -> None:
        if left.type == TIME or right.type == TIME:
            raise self.fail(node, "compare times through age(signal), e.g. age(x) <= days(7)")
        if left.type != right.type:
            raise self.fail(node, f"cannot compare a {left.type} with a {right.type}")
        if left.type in (BOOL, TEXT) and not isinstance(op, ast.Eq | ast.NotEq):
            raise self.fail(node, f"a {left.type} can only be compared with == or !=")

    def choices(self, node: ast.AST, left: Node) -> tuple[Any, ...]:
        if not isinstance(node, ast.Tuple | ast.List) or not node.elts:
            raise self.fail(node, "'in' needs a non-empty tuple of constants")
        values = tuple(self.operand(e) for e in node.elts)
        for value in values:
            if value.op != "const" or value.type != left.type:
                raise self.fail(node, f"'in' needs constants of the same type ({left.type})")
        return tuple(v.args[0] for v in values)

    def operand(self, node: ast.AST) -> Node:
        if isinstance(node, ast.Constant):
            return self.constant(node)
        if isinstance(node, ast.Name | ast.Attribute):
            signal = self.signal(node)
            self.need(signal, VALUE)
            return Node("signal", self.types[signal], (signal,))
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.BoolOp | ast.UnaryOp | ast.Compare):
            return self.expr(node)
        raise self.fail(node, f"{type(node).__name__} is not allowed")

    def constant(self, node: ast.Constant) -> Node:
        value = node.value
        if isinstance(value, bool):
            return Node("const", BOOL, (value,))
        if isinstance(value, int | float):
            return Node("const", NUMBER, (float(value),))
        if isinstance(value, str):
            return Node("const", TEXT, (value,))
        raise self.fail(node, f"constant {value!r} is not allowed")

    def signal(self, node: ast.AST) -> str:
        parts: list[str] = []
        current = node
        while isinstance(current, ast.Attribute):
            parts.append(current.attr)
            current = current.value
        if not isinstance(current, ast.Name):
            raise self.fail(node, "expected a signal name such as edr.healthy")
        parts.append(current.id)
        name = ".".join(reversed(parts))
        if len(parts) < 2:
            raise self.fail(
                node, f"{name!r} is not a signal (signals are dotted, e.g. edr.healthy)"
            )
        if name not in self.types:
            raise self.fail(node, f"unknown signal {name!r}")
        return name

    def call(self, node: ast.Call) -> Node:
        if not isinstance(node.func, ast.Name) or node.keywords:
            raise self.fail(node, "only the documented functions may be called")
        name = node.func.id
        if name in DURATIONS:
            return self.duration(node, name)
        if name not in SIGNAL_FUNCTIONS:
            raise self.fail(node, f"unknown function {name!r}")
        arity = (1, 2) if name == "kev" else (1,)
        if len(node.args) not in arity:
            raise self.fail(node, f"{name}() takes {' or '.join(map(str, arity))} argument(s)")
        signal = self.signal(node.args[0])
        handler: Callable[[ast.Call, str], Node] = getattr(self, f"call_{name}")
        return handler(node, signal)

    def duration(self, node: ast.Call, name: str) -> Node:
        if len(node.args) != 1:
            raise self.fail(node, f"{name}() takes one number")
        arg = node.args[0]
        if (
            not isinstance(arg, ast.Constant)
            or isinstance(arg.value, bool)
            or not isinstance(arg.value, int | float)
            or arg.value < 0
        ):
            raise self.fail(node, f"{name}() takes one non-negative number")
        return Node("const", NUMBER, (float(arg.value) * DURATIONS[name],))

    def call_age(self, node: ast.Call, signal: str) -> Node:
        if self.types[signal] != TIME:
            raise self.fail(node, f"age() needs a time signal; {signal} is a {self.types[signal]}")
        self.need(signal, VALUE)
        return Node("age", NUMBER, (signal,))

    def call_present(self, node: ast.Call, signal: str) -> Node:
        self.need(signal, VALUE)
        return Node("present", BOOL, (signal,))

    def call_ever(self, node: ast.Call, signal: str) -> Node:
        self.need(signal, EVER)
        return Node("ever", BOOL, (signal,))

    def call_count(self, node: ast.Call, signal: str) -> Node:
        self.need(signal, COUNT)
        return Node("count", NUMBER, (signal,))

    def call_kev(self, node: ast.Call, signal: str) -> Node:
        if self.types[signal] != TEXT:
            raise self.fail(node, f"kev() needs a text signal of CVE ids; {signal} is not text")
        grace = 0.0
        if len(node.args) == 2:
            arg = self.operand(node.args[1])
            if arg.op != "const" or arg.type != NUMBER:
                raise self.fail(node, "kev()'s second argument is a duration, e.g. days(14)")
            grace = float(arg.args[0])
        self.need(signal, KEV)
        return Node("kev", NUMBER, (signal, grace))


def parse(source: str, *, types: Mapping[str, str], where: str = "predicate") -> Predicate:
    """Parse and type-check ``source`` against the signal ``types``.

    ``where`` names the file and control for errors.
    """
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("the predicate is empty", file=where)
    return _Parser(source, types, where).parse()


# --- SQL ---------------------------------------------------------------------


def _sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return repr(value)
    text = str(value).replace("'", "''")
    return f"'{text}'"


def _q(name: str) -> str:
    return f'"{name}"'


def _sql_signal(node: Node) -> str:
    signal = node.args[0]
    if node.op == "signal":
        return _q(column(signal))
    if node.op == "age":
        return f"(epoch({STEP_COLUMN}) - epoch({_q(column(signal))}))"
    if node.op == "present":
        return f"({_q(column(signal))} IS NOT NULL)"
    if node.op == "ever":
        return _q(column(signal, EVER))
    if node.op == "count":
        return _q(column(signal, COUNT))
    grace = node.args[1]
    times = _q(column(signal, KEV))
    limit = f"(epoch({STEP_COLUMN}) - {grace!r})"
    return f"len(list_filter({times}, x -> epoch(x) <= {limit}))"


def _sql(node: Node) -> str:
    if node.op in ("and", "or"):
        joiner = f" {node.op.upper()} "
        return "(" + joiner.join(_sql(a) for a in node.args) + ")"
    if node.op == "not":
        return f"(NOT {_sql(node.args[0])})"
    if node.op == "cmp":
        op, left, right = node.args
        return f"({_sql(left)} {op} {_sql(right)})"
    if node.op == "in":
        left, choices = node.args
        listed = ", ".join(_sql_literal(c) for c in choices)
        return f"({_sql(left)} IN ({listed}))"
    if node.op == "const":
        return _sql_literal(node.args[0])
    return _sql_signal(node)


def compile_sql(predicate: Predicate) -> str:
    """DuckDB SQL for the predicate over the pivot: TRUE, FALSE or NULL per row."""
    return _sql(predicate.root)


# --- Python reference --------------------------------------------------------


def _kleene_and(values: list[bool | None]) -> bool | None:
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _kleene_or(values: list[bool | None]) -> bool | None:
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


_PY_COMPARE = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _py_signal(node: Node, row: Mapping[str, Any]) -> Any:
    signal = node.args[0]
    if node.op == "signal":
        return row.get(column(signal))
    if node.op == "present":
        return row.get(column(signal)) is not None
    if node.op == "ever":
        return row.get(column(signal, EVER))
    if node.op == "count":
        return row.get(column(signal, COUNT))
    step: datetime = row[STEP_COLUMN]
    if node.op == "age":
        value = row.get(column(signal))
        return None if value is None else (step - value).total_seconds()
    times = row.get(column(signal, KEV))
    if times is None:
        return None
    return float(sum(1 for x in times if (step - x).total_seconds() >= node.args[1]))


def _py(node: Node, row: Mapping[str, Any]) -> Any:
    if node.op == "and":
        return _kleene_and([_py(a, row) for a in node.args])
    if node.op == "or":
        return _kleene_or([_py(a, row) for a in node.args])
    if node.op == "not":
        value = _py(node.args[0], row)
        return None if value is None else not value
    if node.op == "cmp":
        op, left, right = node.args
        a, b = _py(left, row), _py(right, row)
        return None if a is None or b is None else _PY_COMPARE[op](a, b)
    if node.op == "in":
        value = _py(node.args[0], row)
        return None if value is None else value in node.args[1]
    if node.op == "const":
        return node.args[0]
    return _py_signal(node, row)


def evaluate_row(predicate: Predicate, row: Mapping[str, Any]) -> bool | None:
    """The predicate on one pivot row in plain Python (the reference for the SQL)."""
    result = _py(predicate.root, row)
    return None if result is None else bool(result)
