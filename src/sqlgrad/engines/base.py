"""The engine layer: one adapter per database behind :class:`Engine`, chosen by URL.

An adapter connects, executes sqlglot trees rendered in its dialect, fetches rows, describes relations
and declares its :class:`Capabilities`. Plans read the capabilities; nothing in the compiler asks which
engine it is talking to.
"""

from __future__ import annotations

import abc
import contextlib
import re
from collections.abc import Iterable, Iterator, Sequence
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
        recursive_step: how one iteration can sit in a recursive term: ``"cross"`` (an aggregate over a
            derived table that cross-joins the previous row), ``"lateral"`` (the aggregate in a LATERAL
            subquery reading the previous row), or None when no form with an aggregate is accepted.
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
        fence_subqueries: derived tables need ``OFFSET 0`` so the optimizer keeps each staged level
            instead of re-inlining its columns (PostgreSQL).
        mutable_tables: a run's tables accept DELETE (Spark's do not: the stepwise plan then keeps one
            parameter row per iteration in a plain table of the run).
        ctes_for_derived_tables: nested derived tables are rewritten as a flat ``WITH`` list before
            rendering (SQLite's parser overflows its stack on deeply nested subqueries).
        percentile_cont: ``PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY x)`` is an aggregate (medians of
            ``--impute median``; otherwise a portable ``ROW_NUMBER()`` window query is used).
        analyze_tables: ``ANALYZE <table>`` gathers the statistics the planner needs for a run's work
            tables (PostgreSQL: without them it plans the long plan's joins of temporary tables as
            nested loops, measured 3.4 s against 0.3 s per iteration of a 64-32-10 network on 50 rows).
        scripting: the procedural language in which the whole run can be sent as one script (the
            ``scripted`` plan): ``"plpgsql"`` (a PostgreSQL ``DO`` block) or ``"bigquery"`` (a BigQuery
            multi-statement query with ``DECLARE`` and ``WHILE``); None when the engine has none.
        long_from_params: ``auto`` trains networks with at least this many parameters with the ``long``
            plan (parameters as rows) even where the one-column-per-parameter form fits, because it was
            measured faster there (``docs/strategies.md``, "The long representation"), with an
            optimizer that keeps no state (gradient descent); None: only where the wide form does not
            fit.
        long_from_params_with_state: the same for optimizers with state (momentum, Nesterov, Adam), whose
            wide form carries a column per state value and longer update expressions (measured with
            Adam).
        temp_schema: the schema that names only the connection's temporary tables (DuckDB and SQLite
            ``temp``, PostgreSQL ``pg_temp``): :meth:`Engine.drop_work_table` drops through it, so that
            cleaning up can never drop a user's table of the same name.
        overflow_errors: fragments of the engine's error messages for a double overflow (engines that
            raise instead of returning infinity): a training statement failing so has diverged.
        stepwise_from_rows: from this many rows per update ``auto`` prefers one statement per update to
            the recursive statement, for an engine that runs the recursive statement's updates on one
            thread and the stepwise statements on all of them (measured on DuckDB).
        vector_dot: how the engine multiplies a row vector by a layer's weights as dot products of
            lists, one per unit, instead of one scalar product per weight (DuckDB's ``list_value`` and
            ``list_inner_product``); None: scalar products only.
        gathered_gradients: how the engine sums a wide layer's weight gradient as list dot products
            over blocks of rows (DuckDB's ``list`` aggregate and ``list_inner_product``) instead of one
            ``SUM`` of products per weight; None: one ``SUM`` per weight only.
    """

    dialect: str
    recursive_cte: bool = True
    recursive_step: str | None = None
    recursion_limit: int | None = None
    window_functions: bool = True
    max_select_columns: int | None = None
    max_table_columns: int | None = None
    temp_tables: bool = True
    native_tanh: bool = True
    transactions: bool = True
    max_expression_depth: int | None = None
    reads_files: bool = False
    fence_subqueries: bool = False
    ctes_for_derived_tables: bool = False
    percentile_cont: bool = False
    mutable_tables: bool = True
    analyze_tables: bool = False
    scripting: str | None = None
    long_from_params: int | None = None
    long_from_params_with_state: int | None = None
    temp_schema: str | None = None
    overflow_errors: tuple[str, ...] = ()
    stepwise_from_rows: int | None = None
    vector_dot: VectorDot | None = None
    gathered_gradients: GatheredGradients | None = None


@dataclass(frozen=True)
class VectorDot:
    """Dot products over lists, for the products of a row vector with a layer's weights.

    A vector of ``length`` elements (a layer's input, or the gradient flowing back through it) is packed
    once per row into one list value (``pack(e_0, ..., e_n)``), and each of the ``count`` units it
    meets is one ``dot(vector, pack(w_0, ..., w_n))`` instead of ``length`` scalar products. Packing
    costs a copy per row, which pays off only on wide enough products: lists are used when
    ``length >= min_length`` and ``count >= min_count``.

    >>> VectorDot("list_value", "list_inner_product", 8, 4).applies(64, 32)
    True
    >>> VectorDot("list_value", "list_inner_product", 8, 4).applies(2, 2)
    False
    """

    pack: str
    dot: str
    min_length: int
    min_count: int

    def applies(self, length: int, count: int) -> bool:
        """Whether ``count`` dot products of vectors of ``length`` elements go through lists."""
        return length >= self.min_length and count >= self.min_count


@dataclass(frozen=True)
class GatheredGradients:
    """A layer's weight gradient ``SUM_rows a_i * d_j`` as list dot products over blocks of rows.

    The rows of an update are grouped into blocks of ``block_rows`` by the data table's row number
    (``row_number``, a pseudo-column such as DuckDB's ``rowid``); per block, ``gather`` collects each of
    the layer's inputs ``a_i`` and output deltas ``d_j`` into one list, in the same row order for every
    column of the block; each weight's gradient is then ``SUM(dot(list_a_i, list_d_j))`` over the
    blocks. On DuckDB this sums a wide layer's gradient up to 1.8x faster than one scalar
    ``SUM(a_i * d_j)`` per weight (``benchmarks/floor.py``). The lists hold every row of the update
    at once, and DuckDB cannot spill them to disk: a plan gathers only where
    ``rows * values * bytes_per_value`` fits in a share of the engine's memory limit
    (:meth:`fits`); ``bytes_per_value`` is measured (3.6 times the 8 bytes of a DOUBLE). Gathering
    costs a list append per row for each of a layer's ``fan_in + fan_out`` values and saves work on each
    of its ``fan_in * fan_out`` products, so a layer is gathered only with at least
    ``products_per_value`` products per gathered value (:meth:`applies`).

    The lists of a block line up row by row because the engine feeds every ``gather`` aggregate of a
    group the same rows in the same order, also when threads combine their partial lists. DuckDB does
    so, but does not document it (``ORDER BY rowid`` inside each aggregate would guarantee it, and made
    W2's gathered sums 3.8x slower: slower than one ``SUM`` per weight). ``tests/test_gathered_gradients.py``
    checks it against numpy on 300,000 rows, three row groups and two threads.

    >>> g = GatheredGradients("list", "list_inner_product", "rowid", 4096, 12, 32)
    >>> g.applies(64, 32), g.applies(32, 10), g.applies(64, 2)
    (True, False, False)
    >>> g.fits(rows=100_000, values=138, memory_limit=16 * 2**30)
    True
    >>> g.fits(rows=10_000_000, values=290, memory_limit=16 * 2**30)
    False
    """

    gather: str
    dot: str
    row_number: str
    block_rows: int
    products_per_value: int
    bytes_per_value: int
    memory_share: float = 0.25

    def applies(self, fan_in: int, fan_out: int) -> bool:
        """Whether a ``fan_in`` to ``fan_out`` layer's weight gradient is worth gathering."""
        return fan_in * fan_out >= self.products_per_value * (fan_in + fan_out)

    def fits(self, rows: int, values: int, memory_limit: int | None) -> bool:
        """Whether ``rows`` rows of ``values`` gathered values each fit in :attr:`memory_share` of
        ``memory_limit`` bytes (an unknown limit: never)."""
        if memory_limit is None:
            return False
        return rows * values * self.bytes_per_value <= self.memory_share * memory_limit


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
        from ..sqlexpr import fence_subqueries, render

        if self.capabilities.fence_subqueries:
            statement = fence_subqueries(statement)
        if self.capabilities.ctes_for_derived_tables:
            from sqlglot.optimizer.eliminate_subqueries import eliminate_subqueries

            statement = eliminate_subqueries(statement.copy())
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

    placeholder: str = "?"
    """The driver's parameter marker (``?`` or ``%s``)."""

    def _executemany(self, sql: str, rows: list[tuple]) -> None:
        """Run one parameterised statement for many rows (drivers override when they batch better)."""
        raise EngineError(f"{type(self).__name__} cannot insert rows")

    def create_table(
        self,
        name: str | Sequence[str],
        columns: Sequence[tuple[str, str]],
        rows: Iterable[tuple],
        batch: int = 10_000,
        temporary: bool = False,
    ) -> int:
        """Create table ``name`` with ``(column, kind)`` pairs (kinds of :class:`Column`) and insert rows.

        Returns the number of rows inserted. Used by ``sqlgrad load``, data frames on engines other
        than DuckDB (``temporary``) and the tests; the table must not exist.
        """
        from ..sqlexpr import ident, table

        types = {"integer": "BIGINT", "float": "DOUBLE", "boolean": "BOOLEAN", "text": "TEXT"}
        schema = exp.Schema(
            this=table(name),
            expressions=[
                exp.ColumnDef(this=ident(c), kind=exp.DataType.build(types.get(kind, "TEXT")))
                for c, kind in columns
            ],
        )
        props = exp.Properties(expressions=[exp.TemporaryProperty()]) if temporary else None
        self.execute(exp.Create(this=schema, kind="TABLE", properties=props))
        # The statement's head comes from sqlglot (quoted names); the markers are the driver's own.
        # With ``%s`` drivers a ``%`` inside a quoted name must be doubled.
        target = self.render(exp.Schema(this=table(name), expressions=[ident(c) for c, _ in columns]))
        if self.placeholder == "%s":
            target = target.replace("%", "%%")
        markers = ", ".join([self.placeholder] * len(columns))
        sql = f"INSERT INTO {target} VALUES ({markers})"
        count = 0
        chunk: list[tuple] = []
        for row in rows:
            chunk.append(tuple(row))
            if len(chunk) >= batch:
                self._load_chunk(sql, chunk)
                count += len(chunk)
                chunk = []
        if chunk:
            self._load_chunk(sql, chunk)
            count += len(chunk)
        return count

    def _load_chunk(self, sql: str, rows: list[tuple]) -> None:
        try:
            self._executemany(sql, rows)
        except EngineError:
            raise
        except Exception as err:
            raise EngineError(f"{type(self).__name__} refused the rows: {_first_line(err)}") from err

    def allow_nesting(self, depth: int) -> None:
        """Prepare the session for a query nested ``depth`` levels deep (the article's plan).

        The default does nothing; an engine whose nesting cap is a session setting raises it."""
        return None

    def allow_recursion(self, iterations: int) -> None:
        """Prepare the session for a recursive CTE of ``iterations`` steps (Spark caps it by a setting).

        The default does nothing."""
        return None

    def memory_limit(self) -> int | None:
        """The bytes the engine may hold in memory for a query, or None when unknown (the default).

        A plan that holds state which the engine cannot spill to disk sizes it by this
        (:meth:`GatheredGradients.fits`)."""
        return None

    @contextlib.contextmanager
    def training_settings(self) -> Iterator[None]:
        """Settings under which the training statements run, put back as they were afterwards.

        The default changes nothing; DuckDB turns off an optimizer pass that costs planning time and
        finds nothing in sqlgrad's statements."""
        yield

    def register_frame(self, name: str, frame: Any) -> bool:
        """Make a data frame (pandas, Arrow) readable as ``name`` without copying it, if the engine can;
        returns False when it cannot (the rows are then loaded into a temporary table)."""
        return False

    def unregister_frame(self, name: str) -> None:
        """Undo :meth:`register_frame`."""
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

        self.execute(exp.Drop(tables=[table(name)], kind="TABLE", exists=True))

    def drop_work_table(self, name: str) -> None:
        """Drop a run's work table if it exists: only a temporary table where the run's work tables are
        temporary (through :attr:`Capabilities.temp_schema`), never a permanent table of that name."""
        from ..sqlexpr import ident

        caps = self.capabilities
        if caps.temp_tables and caps.mutable_tables and caps.temp_schema:
            target = exp.Table(this=ident(name), db=ident(caps.temp_schema))
            self.execute(exp.Drop(tables=[target], kind="TABLE", exists=True))
        else:
            self.drop_table(name)

    def __deepcopy__(self, memo: dict) -> Engine:
        """An engine is a live connection: copies (scikit-learn's ``clone``) share it."""
        return self

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def as_query(relation: exp.Expression) -> exp.Query:
    """A query over ``relation``: a query as it is, anything FROM-able (a table, a table function, an
    aliased derived table) as ``SELECT * FROM relation``."""
    if isinstance(relation, exp.Query) and not isinstance(relation, exp.Subquery):
        return relation
    return exp.select("*").from_(relation)


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else text
