"""What the adapters of remote warehouses (BigQuery, Trino) share: rows loaded as multi-row ``INSERT ...
VALUES`` statements built by sqlglot, and URL options.

Their DB-API drivers run one remote query per row in ``executemany`` (one BigQuery job, or one Trino
query, per row), so ``sqlgrad load`` would take hours: rows go instead as literals, a few hundred
kilobytes of SQL per statement (BigQuery accepts 1 MB of query text; Trino's default limit is also 1 MB).

>>> literal(0.1).sql("bigquery"), literal(float("inf")).sql("bigquery"), literal("it's").sql("bigquery")
('0.1', "CAST('inf' AS FLOAT64)", "'it\\\\'s'")
>>> literal(float("-inf"), "trino").sql("trino")
"CAST('-Infinity' AS DOUBLE)"
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import parse_qs

from sqlglot import exp

from ..errors import EngineError
from ..sqlexpr import ident, table
from .base import Engine

COLUMN_TYPES = {"integer": "BIGINT", "float": "DOUBLE", "boolean": "BOOLEAN", "text": "TEXT"}
"""SQL type of each column kind of :class:`~sqlgrad.engines.base.Column` (rendered per dialect)."""

MAX_STATEMENT_CHARS = 400_000
"""Query text per ``INSERT ... VALUES`` statement while loading rows."""


NON_FINITE = {
    "trino": {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"},  # Java's Double.parseDouble
}
"""How a dialect spells non-finite doubles in ``CAST('...' AS DOUBLE)`` (default: ``nan``, ``inf``)."""


def literal(value: Any, dialect: str = "") -> exp.Expression:
    """A SQL literal for one data value (None, bool, int, float, str); floats keep every bit (``repr``)."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value) if value >= 0 else exp.Neg(this=exp.Literal.number(-value))
    if isinstance(value, float):
        if not math.isfinite(value):
            text = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
            text = NON_FINITE.get(dialect, {}).get(text, text)
            return exp.Cast(this=exp.Literal.string(text), to=exp.DataType.build("DOUBLE"))
        lit = exp.Literal.number(repr(abs(value)))
        return exp.Neg(this=lit) if math.copysign(1.0, value) < 0 else lit
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise EngineError(f"cannot load a value of type {type(value).__name__}: {value!r}")


def create_table_with_values(
    engine: Engine,
    name: str | Sequence[str],
    columns: Sequence[tuple[str, str]],
    rows: Iterable[tuple],
    max_chars: int = MAX_STATEMENT_CHARS,
) -> int:
    """``CREATE TABLE name (...)`` then ``INSERT INTO name VALUES (...), ...`` in statements of at most
    about ``max_chars`` characters. Returns the number of rows inserted."""
    target = table(name)
    schema = exp.Schema(
        this=target.copy(),
        expressions=[
            exp.ColumnDef(this=ident(c), kind=exp.DataType.build(COLUMN_TYPES.get(kind, "TEXT")))
            for c, kind in columns
        ],
    )
    engine.execute(exp.Create(this=schema, kind="TABLE"))
    dialect = engine.capabilities.dialect
    count, size = 0, 0
    chunk: list[exp.Tuple] = []
    for row in rows:
        values = [literal(v, dialect) for v in row]
        if len(values) != len(columns):
            raise EngineError(f"a row has {len(values)} values for {len(columns)} columns")
        chunk.append(exp.Tuple(expressions=values))
        size += sum(len(v.sql(dialect)) + 2 for v in values)
        if size >= max_chars:
            _insert(engine, target, chunk)
            count, size, chunk = count + len(chunk), 0, []
    if chunk:
        _insert(engine, target, chunk)
        count += len(chunk)
    return count


def _insert(engine: Engine, target: exp.Table, rows: list[exp.Tuple]) -> None:
    engine.execute(exp.insert(exp.Values(expressions=rows), target.copy()))


def url_options(query: str) -> dict[str, str]:
    """``?a=1&b=2`` as a dict (the last value of a repeated key wins)."""
    return {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
