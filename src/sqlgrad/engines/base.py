"""The engine layer: one adapter per database behind :class:`Engine`, chosen by URL.

An adapter connects, executes sqlglot trees rendered in its dialect, fetches rows, describes relations
and declares its :class:`Capabilities`. Plans read the capabilities; nothing in the compiler asks which
engine it is talking to.
"""

from __future__ import annotations

import abc
import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from ..errors import EngineError


@dataclass(frozen=True)
class Capabilities:
    """What an engine accepts, as measured (see ``docs/engines.md``).

    Attributes:
        dialect: sqlglot dialect used to render every statement.
        recursive_cte: ``WITH RECURSIVE`` is supported.
        recursive_aggregate: the recursive term may hold an aggregate over a derived table that
            cross-joins the previous row (the form the ``recursive`` plan emits).
        recursion_limit: iterations a recursive CTE may run before the engine stops it, or None.
        window_functions: ``SUM(...) OVER ()`` is supported (the ``nested`` plan needs it).
        max_select_columns: the most entries a select list may have, or None if unbounded in practice.
        max_table_columns: the most columns a table may have, or None.
        temp_tables: ``CREATE TEMPORARY TABLE`` is supported and private to the connection.
        native_tanh: a ``TANH`` function exists (otherwise a stable formula is emitted).
        transactions: statements can be grouped in a transaction.
        max_expression_depth: nesting depth at which the engine refuses a query by default, or None
            (see :meth:`Engine.allow_nesting`).
        reads_files: CSV/Parquet/JSON paths can be queried directly (``read_csv('...')``).
        isnan_isinf: ``ISNAN``/``ISINF`` exist (used to refuse NaN and infinite feature values).
    """

    dialect: str
    recursive_cte: bool = True
    recursive_aggregate: bool = False
    recursion_limit: int | None = None
    window_functions: bool = True
    max_select_columns: int | None = None
    max_table_columns: int | None = None
    temp_tables: bool = True
    native_tanh: bool = True
    transactions: bool = True
    max_expression_depth: int | None = None
    reads_files: bool = False
    isnan_isinf: bool = False


@dataclass(frozen=True)
class Column:
    """A column of a relation as the engine reports it."""

    name: str
    type: str

    @property
    def kind(self) -> str:
        """``integer``, ``float``, ``boolean``, ``text``, ``temporal`` or ``other``.

        >>> [Column("c", t).kind for t in ("BIGINT", "DECIMAL(8,2)", "VARCHAR", "INTERVAL", "BOOLEAN")]
        ['integer', 'float', 'text', 'temporal', 'boolean']
        """
        base = re.split(r"[\s(\[]", self.type.strip().upper(), maxsplit=1)[0]
        for kind, names in TYPE_KINDS.items():
            if base in names:
                return kind
        return "other"


TYPE_KINDS: dict[str, frozenset[str]] = {
    "integer": frozenset(
        {
            "TINYINT",
            "SMALLINT",
            "INTEGER",
            "BIGINT",
            "HUGEINT",
            "UTINYINT",
            "USMALLINT",
            "UINTEGER",
            "UBIGINT",
            "UHUGEINT",
            "INT",
            "INT2",
            "INT4",
            "INT8",
            "MEDIUMINT",
        }
    ),
    "float": frozenset({"DOUBLE", "FLOAT", "FLOAT4", "FLOAT8", "REAL", "DECIMAL", "NUMERIC"}),
    "boolean": frozenset({"BOOLEAN", "BOOL"}),
    "text": frozenset({"VARCHAR", "TEXT", "CHAR", "STRING", "ENUM", "BPCHAR"}),
    "temporal": frozenset(
        {
            "DATE",
            "TIME",
            "TIMESTAMP",
            "TIMESTAMPTZ",
            "INTERVAL",
            "DATETIME",
            "TIMESTAMP_S",
            "TIMESTAMP_MS",
            "TIMESTAMP_NS",
        }
    ),
}
"""Column kinds by the base name of the engine's type."""


class Engine(abc.ABC):
    """One open connection to a database."""

    capabilities: Capabilities
    url: str

    # --- what every adapter implements -----------------------------------------------------------

    @abc.abstractmethod
    def _execute(self, sql: str) -> Any:
        """Run one statement (already rendered); return the driver's cursor or result."""

    @abc.abstractmethod
    def _fetchall(self, result: Any) -> list[tuple]:
        """All rows of a result returned by :meth:`_execute`."""

    @abc.abstractmethod
    def describe(self, relation: exp.Expression) -> list[Column]:
        """Columns (name and type) of a table, view or query expression."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close the connection."""

    # --- shared behaviour ------------------------------------------------------------------------

    def render(self, statement: exp.Expression, pretty: bool = False) -> str:
        """The statement as SQL text in this engine's dialect."""
        from ..sqlexpr import render

        return render(statement, self.capabilities.dialect, pretty)

    def execute(self, statement: exp.Expression | str) -> None:
        """Run a statement and discard any result."""
        self._run(statement)

    def query(self, statement: exp.Expression | str) -> list[tuple]:
        """Run a query and return all its rows."""
        return self._fetchall(self._run(statement))

    def scalar(self, statement: exp.Expression | str) -> Any:
        rows = self.query(statement)
        return rows[0][0] if rows else None

    def _run(self, statement: exp.Expression | str) -> Any:
        sql = statement if isinstance(statement, str) else self.render(statement)
        try:
            return self._execute(sql)
        except EngineError:
            raise
        except Exception as err:  # driver errors become one clear line
            raise EngineError(f"{type(self).__name__} refused a statement: {_first_line(err)}") from err

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group statements; commit on success, roll back on any error."""
        if not self.capabilities.transactions:
            yield
            return
        self.execute("BEGIN")
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")

    def allow_nesting(self, depth: int) -> None:
        """Prepare the session for a query nested ``depth`` levels deep (the article's plan).

        The default does nothing; an engine whose nesting cap is a session setting raises it."""
        return None

    def table_exists(self, name: Sequence[str]) -> bool:
        """Whether a table or view of that (possibly qualified) name exists."""
        from ..sqlexpr import table

        try:
            self.describe(table(list(name)))
        except EngineError:
            return False
        return True

    def drop_table(self, name: str) -> None:
        from ..sqlexpr import table

        self.execute(exp.Drop(this=table(name), kind="TABLE", exists=True))

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else text
