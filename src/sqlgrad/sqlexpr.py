"""Small builders for sqlglot expressions: quoted identifiers and DOUBLE literals, nothing pasted as text.

>>> num(0.0105101).sql("duckdb")
'CAST(0.0105101 AS DOUBLE)'
>>> num(2).sql("duckdb")
'2'
>>> (col("x 1") * num(0.5)).sql("postgres")
'"x 1" * CAST(0.5 AS DOUBLE PRECISION)'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from functools import reduce
from typing import TypeVar

from sqlglot import exp

from .errors import SpecError

DOUBLE = exp.DataType.build("DOUBLE")
E = TypeVar("E", bound=exp.Expression)


def ident(name: str) -> exp.Identifier:
    """A quoted identifier: any text is a legal name and none is ever parsed as SQL."""
    return exp.to_identifier(name, quoted=True)


def col(name: str, table: str | None = None) -> exp.Column:
    """A quoted column reference, optionally qualified by a quoted table alias."""
    return exp.Column(this=ident(name), table=ident(table) if table else None)


def table(name: str | Sequence[str]) -> exp.Table:
    """A quoted table reference; a sequence is ``(schema, table)`` or ``(catalog, schema, table)``."""
    parts = [name] if isinstance(name, str) else list(name)
    if not 1 <= len(parts) <= 3:
        raise SpecError(f"a table name has 1 to 3 parts, got {parts}")
    parts = [None] * (3 - len(parts)) + parts
    catalog, db, tbl = (ident(p) if p is not None else None for p in parts)
    return exp.Table(this=tbl, db=db, catalog=catalog)


def num(value: float | int) -> exp.Expression:
    """A numeric literal typed DOUBLE. Integers stay plain (exact in every type); other values are cast,
    because DuckDB, PostgreSQL, MariaDB and Spark type ``0.0105101`` as DECIMAL and would round."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"not a number: {value!r}")
    if not math.isfinite(value):
        raise SpecError(f"not a finite number: {value!r}")
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 2**31):
        iv = int(value)
        lit = exp.Literal.number(abs(iv))
        return exp.Neg(this=lit) if iv < 0 else lit
    text = repr(float(value))
    lit = exp.Literal.number(text.lstrip("-"))
    cast = exp.Cast(this=lit, to=_double())
    return exp.Neg(this=cast) if text.startswith("-") else cast


def value_literal(value: object) -> exp.Expression:
    """A literal for a data value (a class label): strings quoted by sqlglot, numbers and booleans as is."""
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value) if value >= 0 else exp.Neg(this=exp.Literal.number(-value))
    if isinstance(value, float):
        return num(value)
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise SpecError(f"unsupported label value {value!r}")


def paren(e: exp.Expression) -> exp.Expression:
    return (
        e if isinstance(e, exp.Column | exp.Literal | exp.Paren | exp.Func | exp.Cast) else exp.Paren(this=e)
    )


def neg(e: exp.Expression) -> exp.Expression:
    return exp.Neg(this=paren(e))


TOTAL_CHAIN = 32
"""Sums of up to this many terms are written left to right; longer ones as a balanced tree of such
chains, so that a sum over thousands of weights (the L2 penalty of a wide model) stays far below the
engines' expression-depth limits (DuckDB refuses depth 1,000)."""


def total(terms: Iterable[exp.Expression]) -> exp.Expression:
    """``t0 + t1 + ...``: left to right up to :data:`TOTAL_CHAIN` terms, else a balanced tree of chains.

    >>> total([col("a"), col("b"), col("c")]).sql()
    '"a" + "b" + "c"'
    """
    items = list(terms)
    if not items:
        return exp.Literal.number(0)
    if len(items) <= TOTAL_CHAIN:
        return reduce(lambda a, b: exp.Add(this=a, expression=b), items)
    half = (len(items) + 1) // 2
    return exp.Add(this=exp.Paren(this=total(items[:half])), expression=exp.Paren(this=total(items[half:])))


def _binary(kind: type[exp.Binary], a: exp.Expression, b: exp.Expression) -> exp.Expression:
    """``a <op> b`` exactly as sqlglot's operators build it (a binary operand is put in parentheses
    unless either side already is of this kind), but with ``a`` and ``b`` themselves, not copies: give
    operands built for this one use (the operators copy both, which on the dot products of a wide layer
    copied every partial sum again)."""
    if not isinstance(a, kind) and not isinstance(b, kind):
        a = exp.Paren(this=a) if isinstance(a, exp.Binary) else a
        b = exp.Paren(this=b) if isinstance(b, exp.Binary) else b
    return kind(this=a, expression=b)


def plus(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    """``a + b`` as ``a + b`` on expressions builds it, without copying the operands.

    >>> plus(col("a"), col("b") * col("c")).sql()
    '"a" + ("b" * "c")'
    """
    return _binary(exp.Add, a, b)


def minus(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    """``a - b`` as ``a - b`` on expressions builds it, without copying the operands."""
    return _binary(exp.Sub, a, b)


def times(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    """``a * b`` as ``a * b`` on expressions builds it, without copying the operands."""
    return _binary(exp.Mul, a, b)


def case(ifs: Sequence[tuple[exp.Expression, exp.Expression]], default: exp.Expression | None) -> exp.Case:
    return exp.Case(ifs=[exp.If(this=c, true=t) for c, t in ifs], default=default)


def gt(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    return exp.GT(this=a, expression=b)


def ge(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    return exp.GTE(this=a, expression=b)


def eq(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    return exp.EQ(this=a, expression=b)


def lt(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    return exp.LT(this=a, expression=b)


def fexp(e: exp.Expression) -> exp.Expression:
    return exp.Exp(this=e)


def ln(e: exp.Expression) -> exp.Expression:
    """Natural log: always ``LN`` (one-argument ``LOG`` is base 10 on DuckDB, PostgreSQL and SQLite)."""
    return exp.Ln(this=e)


def greatest(items: Sequence[exp.Expression]) -> exp.Expression:
    if len(items) == 1:
        return items[0]
    return exp.Greatest(this=items[0], expressions=list(items[1:]), ignore_nulls=True)


def alias(e: exp.Expression, name: str) -> exp.Alias:
    return exp.Alias(this=e, alias=ident(name))


def _double() -> exp.DataType:
    """A fresh ``DOUBLE`` type node, as ``DOUBLE.copy()`` but without a deep copy (a wide model's
    statements hold tens of thousands of them)."""
    return exp.DataType(this=DOUBLE.this, nested=False)


def to_double(e: exp.Expression) -> exp.Expression:
    return exp.Cast(this=e, to=_double())


def fence_subqueries(statement: exp.Expression) -> exp.Expression:
    """A copy where every derived table gets ``OFFSET 0``.

    PostgreSQL pulls simple subqueries up into their parent and substitutes their output expressions;
    for the staged levels of a network that re-inlines every shared column, and the expression grows
    exponentially with the depth (measured: 5 iterations of a 3-4-2 network on 200 rows took 218 s).
    ``OFFSET 0`` is PostgreSQL's documented way to keep a subquery as it is.

    >>> fence_subqueries(exp.select("a").from_(exp.select("a").from_("t").subquery("s"))).sql()
    'SELECT a FROM (SELECT a FROM t OFFSET 0) AS s'
    """
    statement = statement.copy()
    for sub in list(statement.find_all(exp.Subquery)):
        inner = sub.this
        if (
            isinstance(sub.parent, exp.From | exp.Join)
            and isinstance(inner, exp.Select)
            and not inner.args.get("limit")
            and not inner.args.get("offset")
        ):
            inner.set("offset", exp.Offset(expression=exp.Literal.number(0)))
    return statement


DISPOSABLE = "sqlgrad_disposable"
"""Meta key of a statement built only to be rendered (:func:`disposable`)."""


def disposable(statement: E) -> E:
    """Mark a statement as built for rendering only, by the caller that built it: :func:`render` then
    skips sqlglot's defensive copy of the whole tree before generating (seconds on the statements of
    a wide model). The tree must not be used after rendering, except to render it again.

    >>> st = disposable(exp.select(col("a")).from_(table("t")))
    >>> render(st, "duckdb")
    'SELECT "a" FROM "t"'
    """
    statement.meta[DISPOSABLE] = True
    return statement


def render(statement: exp.Expression, dialect: str, pretty: bool = False) -> str:
    """SQL text of a statement. sqlglot renders recursively; a query nested hundreds of levels deep (the
    article's plan) is rendered in a thread with a large stack and a raised recursion limit.

    sqlglot's generator may rewrite the tree it renders, so it renders a copy; a statement marked by
    :func:`disposable` (and not part of a larger tree) is rendered in place."""
    copy = not (statement.parent is None and statement.meta.get(DISPOSABLE))
    try:
        return statement.sql(dialect=dialect, pretty=pretty, copy=copy)
    except RecursionError:
        pass
    import sys
    import threading

    out: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(1_000_000)
        try:
            out.append(statement.sql(dialect=dialect, pretty=pretty, copy=copy))
        except BaseException as err:  # re-raised in the caller's thread
            errors.append(err)
        finally:
            sys.setrecursionlimit(old)

    old_size = threading.stack_size(1 << 30)
    try:
        thread = threading.Thread(target=work, name="sqlgrad-render")
        thread.start()
        thread.join()
    finally:
        threading.stack_size(old_size)
    if errors:
        if isinstance(errors[0], RecursionError):
            raise SpecError("the query is nested too deeply to render") from errors[0]
        raise errors[0]
    return out[0]
