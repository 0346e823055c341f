"""SQLite through the standard library: ``sqlite://`` (in memory) or ``sqlite:///path/to/file.db``.

Measured (``docs/engines.md``): no aggregate is accepted in a recursive term (``recursive aggregate
queries not supported``), so training is stepwise; a table holds at most 2,000 columns; the math functions
(``EXP``, ``LN``, ``TANH``) are built in since 3.35. Its query flattener re-inlines the staged
columns (5 steps of a 3-4-2 tanh network on 2,000 rows: 12.6 s, against 0.51 s with every level fenced
by ``OFFSET 0``), and its parser overflows on deeply nested subqueries, so levels become a ``WITH`` list.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlglot import exp

from ..errors import EngineError, UsageError
from ..sqlexpr import col
from .base import Capabilities, Column, as_query
from .dbapi import DBAPIEngine


class SQLiteEngine(DBAPIEngine):
    capabilities = Capabilities(
        dialect="sqlite",
        recursive_cte=True,
        recursive_step=None,
        window_functions=True,
        max_select_columns=2000,
        max_table_columns=2000,
        temp_tables=True,
        temp_schema="temp",
        native_tanh=True,
        transactions=True,
        percentile_cont=False,
        ctes_for_derived_tables=True,
        fence_subqueries=True,
        # measured (docs/strategies.md): stepwise stays faster with gradient descent up to 1,238
        # parameters; with Adam the long plan is faster from about 200
        long_from_params_with_state=200,
    )

    def __init__(self, url: str = "sqlite://", connection: Any | None = None) -> None:
        self.url = url
        if connection is not None:
            # a connection the caller holds: used in autocommit mode, given back as it came
            if connection.in_transaction:
                raise UsageError("the sqlite3 connection is inside a transaction: commit or roll back first")
            self._con, self._owned = connection, False
            self._restore = {"isolation_level": connection.isolation_level}
            connection.isolation_level = None
            self._check_version()
            return
        path = _path_from_url(url)
        try:
            self._con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as err:
            raise EngineError(f"cannot open SQLite database {path!r}: {err}") from err
        self._owned = True
        self._check_version()

    def _check_version(self) -> None:
        version = self._con.execute("SELECT sqlite_version()").fetchone()[0]
        if tuple(int(v) for v in version.split(".")[:2]) < (3, 35):
            raise EngineError(f"SQLite 3.35 or newer is needed (math functions EXP, LN); this is {version}")

    def _give_back(self, saved: dict[str, Any]) -> None:
        self._con.isolation_level = saved["isolation_level"]

    def _executemany(self, sql: str, rows: list[tuple]) -> None:
        self._con.executemany(sql, rows)

    def describe(self, relation: exp.Expression) -> list[Column]:
        """SQLite reports no result types: use the declared type of a table's column, else the storage
        class of the first non-NULL value."""
        query = as_query(relation)
        cur = self._run(query.limit(0))
        names = [d[0] for d in cur.description]
        cur.close()
        declared: dict[str, str] = {}
        if isinstance(relation, exp.Table) and isinstance(relation.this, exp.Identifier):
            pragma = self._con.execute(
                "SELECT name, type FROM pragma_table_info(?)", (relation.name,)
            ).fetchall()
            declared = {n: t for n, t in pragma if t}
        out = []
        for n in names:
            if n in declared:
                out.append(Column(n, declared[n]))
                continue
            sample = (
                exp.select(exp.Anonymous(this="typeof", expressions=[col(n)]))
                .from_(query.subquery("s"))
                .where(exp.Not(this=exp.Is(this=col(n), expression=exp.Null())))
                .limit(1)
            )
            found = self.query(sample)
            out.append(
                Column(
                    n,
                    {"integer": "INTEGER", "real": "REAL", "text": "TEXT"}.get(
                        found[0][0] if found else "", "TEXT" if found else "REAL"
                    ),
                )
            )
        return out


def _path_from_url(url: str) -> str:
    if not url.startswith("sqlite://"):
        raise EngineError(f"not a SQLite URL: {url!r} (expected sqlite:// or sqlite:///path/to/file.db)")
    rest = url[len("sqlite://") :]
    if rest in ("", "/", "/:memory:"):
        return ":memory:"
    if not rest.startswith("/"):
        raise EngineError(
            f"bad SQLite URL {url!r}: write sqlite:///relative.db or sqlite:////absolute/path.db"
        )
    return rest[1:]
