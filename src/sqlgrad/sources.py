"""What a training or a scoring reads: a table or view, a file, an explicit SQL query, or a data frame.

A name is never parsed as SQL. SQL text is read only when the caller says so, with :class:`Query`
(``--query`` in the CLI): it is parsed in the engine's dialect, must be one read-only query, and runs
as a derived table. A pandas or polars data frame or an Arrow table is registered on DuckDB (no copy)
and loaded into a temporary table on other engines; either way it is gone when the call ends.

>>> import pandas as pd
>>> from sqlgrad.engines.duckdb import DuckDBEngine
>>> eng = DuckDBEngine()
>>> frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": ["a", "b", "a"]})
>>> with open_source(eng, frame, "sqlgrad_doc") as src:
...     eng.query(exp.select("label").from_(src.relation()).where("x > 1"))
[('b',), ('a',)]
>>> with open_source(eng, Query("SELECT 2 AS two"), "sqlgrad_doc") as src:
...     eng.query(exp.select("*").from_(src.relation()))
[(2,)]
>>> Query("DROP TABLE t").parse("duckdb")
Traceback (most recent call last):
sqlgrad.errors.UsageError: --query must be one SELECT query (it only reads), not DROP
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

from .data import DataSource, copy_relation, resolve_source
from .engines.base import Engine
from .errors import DataError, EngineError, UsageError

_WRITES = (
    exp.DDL,
    exp.DML,
    exp.Command,
    exp.Drop,
    exp.Alter,
    exp.Set,
    exp.Use,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Into,
)
"""Statement kinds a query must not contain anywhere (not even in a CTE: PostgreSQL runs
``WITH d AS (DELETE ...) SELECT``, and ``SELECT ... INTO t`` creates a table)."""


@dataclass(frozen=True)
class Query:
    """SQL text to read as the data: one ``SELECT`` (``WITH`` and set operations allowed), in the
    engine's own dialect. It is the one place where sqlgrad parses user text as SQL.

    >>> Query("SELECT * FROM points WHERE split = 'train'").sql
    "SELECT * FROM points WHERE split = 'train'"
    """

    sql: str

    def parse(self, dialect: str) -> exp.Query:
        """The query as a sqlglot tree; any other statement (or more than one) is a UsageError."""
        text = self.sql.strip().rstrip(";").strip() if isinstance(self.sql, str) else ""
        if not text:
            raise UsageError("--query is empty: give one SELECT query")
        try:
            statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
        except sqlglot.errors.SqlglotError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UsageError(f"--query is not valid {dialect} SQL: {first}") from err
        if len(statements) != 1:
            raise UsageError(f"--query must be one SELECT query, not {len(statements)} statements")
        (tree,) = statements
        bad = tree if not isinstance(tree, exp.Query) else next(tree.find_all(*_WRITES), None)
        if bad is not None:
            kind = str(bad.this).upper() if isinstance(bad, exp.Command) else bad.key.upper()
            raise UsageError(f"--query must be one SELECT query (it only reads), not {kind}")
        assert isinstance(tree, exp.Query)
        return tree


def frame_kind(data: Any) -> str | None:
    """``pandas``, ``polars`` or ``arrow`` when ``data`` is such a data frame or table, else None."""
    root = type(data).__module__.split(".")[0]
    if root == "pandas" and hasattr(data, "columns"):
        return "pandas"
    if root == "polars" and hasattr(data, "to_arrow"):
        return "polars"
    if root == "pyarrow" and hasattr(data, "schema") and hasattr(data, "num_rows"):
        return "arrow"
    return None


def describe_data(data: Any) -> str:
    """How a data argument is named in messages and in a model's training record."""
    if isinstance(data, str):
        return data
    if isinstance(data, Query):
        return "query"
    kind = frame_kind(data)
    return f"{kind} data frame" if kind else type(data).__name__


@contextlib.contextmanager
def open_source(engine: Engine, data: str | Query | Any, run: str) -> Iterator[DataSource]:
    """The relation behind ``data`` for the length of a ``with`` block.

    ``run`` prefixes anything created for it (a frame's registration or temporary table), which is
    removed at the end, after success or failure.
    """
    if isinstance(data, str):
        yield resolve_source(engine, data)
        return
    if isinstance(data, Query):
        tree = data.parse(engine.capabilities.dialect)
        src = DataSource(query=tree, name="query")
        try:
            engine.describe(src.relation())
        except EngineError as err:
            raise DataError(f"the query failed: {err}") from err
        yield src
        return
    kind = frame_kind(data)
    if kind is None:
        raise UsageError(
            f"data must be a table or view name, a file path, a sqlgrad.Query or a data frame "
            f"(pandas, polars, Arrow); got {type(data).__name__}"
        )
    frame = data.to_arrow() if kind == "polars" else data
    name = f"{run}_frame"
    if engine.register_frame(name, frame):
        try:
            yield DataSource(parts=(name,), name=f"{kind} data frame")
        finally:
            with contextlib.suppress(Exception):
                engine.unregister_frame(name)
        return
    from .engines.duckdb import DuckDBEngine

    reader = DuckDBEngine()
    try:
        reader.register_frame("frame", frame)
        copy_relation(reader, DataSource(parts=("frame",)), engine, (name,), temporary=True)
    finally:
        reader.close()
    try:
        yield DataSource(parts=(name,), name=f"{kind} data frame")
    finally:
        with contextlib.suppress(Exception):
            engine.drop_work_table(name)
