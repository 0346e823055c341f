"""Scoring SQL that runs without sqlgrad: ``sqlgrad export``.

A model becomes one plain query (or ``CREATE VIEW``) in a SQL dialect, built as sqlglot trees from
:meth:`sqlgrad.model.Model.predict_select`, so it applies the model's preprocessing (imputation,
one-hot categories, booleans; standardisation is folded into the weights) exactly as ``sqlgrad predict``
does. The weights are either inlined as DOUBLE literals, or kept in a *weights table* in long form::

    layer  i   j  value          -- layer is 1-based; i, j index W[i][j]; i = -1 holds the bias b[j]

that the query reads in one aggregate (one row, one column per parameter, cross-joined with the data),
so the weights of a retrained model of the same architecture and preprocessing can be swapped in by
rewriting the table's rows (:func:`weights_statements` with ``create=False``, ``--weights-only``) while
the view stays as it is. A missing row makes the predictions NULL; (layer, i, j) should be unique.

>>> from sqlgrad.model import Model
>>> import numpy as np
>>> m = Model(features=["x"], target="y", task="regression", head="identity", activations=[],
...           weights=[(np.array([[2.0]]), np.array([0.5]))])
>>> print(export_sql(m, "duckdb", table_name="points", pretty=False))  # doctest: +ELLIPSIS
SELECT "__sg_c0" AS "x", CASE WHEN "__sg_null" = 1 THEN NULL ELSE ("__sg_x_0" * 2) + CAST(0.5 AS DOUBLE) ...
>>> sql = export_sql(m, "postgres", table_name="points", view="scored", weights_table="w", pretty=False)
>>> [s.split(" (")[0].split(" AS")[0] for s in sql.split(";\\n\\n")]
['CREATE TABLE "w"', 'INSERT INTO "w"', 'CREATE VIEW "scored"']
>>> 'MAX(CASE WHEN "layer" = 1 AND "i" = -1 AND "j" = 0 THEN "value" END) AS "__sg_b1_0"' in sql
True
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import replace as dc_replace

import numpy as np
from sqlglot import exp
from sqlglot.errors import SqlglotError

from .engines.base import Capabilities
from .errors import UsageError
from .model import Model
from .sqlexpr import case, col, eq, fence_subqueries, ident, num, render, table

DIALECTS = (
    "duckdb",
    "sqlite",
    "postgres",
    "mysql",
    "spark",
    "databricks",
    "bigquery",
    "trino",
    "presto",
    "snowflake",
    "redshift",
)
"""Dialects ``sqlgrad export`` writes; each is rendered and parsed back by the tests, and the first four
are run on a live database."""

WEIGHT_COLUMNS = ("layer", "i", "j", "value")
"""Columns of a weights table (long form): layer (1-based), i (input; -1 for the bias), j (unit), value."""

BIAS = -1
"""The ``i`` of a bias row in a weights table."""

INSERT_BATCH = 500
"""Rows per ``INSERT ... VALUES`` statement of a weights table."""

LIMIT_FENCE = 2**63 - 1
"""MariaDB/MySQL merge a derived table into its parent, which re-inlines every staged column (the
engine adapter turns ``derived_merge`` off for its session; exported SQL cannot count on that: a
3-layer model on 2,000 rows ran over 10 minutes). A derived table with a ``LIMIT`` is never merged, so
the export puts this one on each (measured: 15 s for 10,000 rows of a 10-32-16-3 model)."""

_FENCE_BY_LIMIT = frozenset({"mysql"})

_NO_TANH = frozenset({"redshift"})
"""Dialects without a ``TANH`` function among those with no engine adapter (the adapters declare theirs)."""


_ADAPTERS = {
    "duckdb": ("duckdb", "DuckDBEngine"),
    "sqlite": ("sqlite", "SQLiteEngine"),
    "postgres": ("postgres", "PostgresEngine"),
    "mysql": ("mysql", "MySQLEngine"),
    "spark": ("spark", "SparkEngine"),
    "databricks": ("spark", "SparkEngine"),
    "bigquery": ("bigquery", "BigQueryEngine"),
    "trino": ("trino", "TrinoEngine"),
    "presto": ("trino", "TrinoEngine"),
}
"""The engine adapter (module of :mod:`sqlgrad.engines`, class) whose capabilities a dialect's export
follows; the modules import their drivers lazily, so reading a class costs no driver."""


def capabilities_for(dialect: str) -> Capabilities:
    """What the exported SQL may use in ``dialect``: the engine adapter's capabilities where sqlgrad has
    one (DuckDB, SQLite, PostgreSQL, MariaDB/MySQL, Spark, BigQuery, Trino), else the defaults (``TANH``
    where the dialect has it).

    >>> capabilities_for("mysql").native_tanh, capabilities_for("postgres").fence_subqueries
    (False, True)
    >>> capabilities_for("databricks").dialect
    'databricks'
    """
    if dialect not in DIALECTS:
        raise UsageError(f"sqlgrad exports to {', '.join(DIALECTS)}; not {dialect!r}")
    if dialect in _ADAPTERS:
        module, name = _ADAPTERS[dialect]
        try:
            engine = getattr(importlib.import_module(f"sqlgrad.engines.{module}"), name)
        except (ImportError, AttributeError):
            engine = None
        if engine is not None:
            return dc_replace(engine.capabilities, dialect=dialect)
    return Capabilities(dialect=dialect, native_tanh=dialect not in _NO_TANH)


def qualified(name: str) -> list[str]:
    """``schema.table`` as its parts (a name with an empty part, like ``a..b``, stays one name).

    >>> qualified("sales.points"), qualified("odd..name")
    (['sales', 'points'], ['odd..name'])
    """
    parts = name.split(".")
    return parts if len(parts) <= 3 and all(parts) else [name]


def weights_pivot(model: Model, weights_table: str) -> exp.Select:
    """The one-row relation of the model's parameters read from a weights table:
    ``SELECT MAX(CASE WHEN layer = 1 AND i = 0 AND j = 0 THEN value END) AS "__sg_w1_0_0", ... FROM t``,
    cross-joined with the data by :meth:`Model.predict_select` (one scan of the weights table; one
    scalar subquery per weight took 40 s for 931 weights on DuckDB, which plans each as a join)."""
    cells = []
    for name, layer, i, j in model.parameter_columns():
        hit = exp.and_(eq(col("layer"), _int(layer)), eq(col("i"), _int(i)), eq(col("j"), _int(j)))
        cells.append(exp.alias_(exp.Max(this=case([(hit, col("value"))], None)), ident(name)))
    return exp.select(*cells).from_(table(qualified(weights_table)))


def _int(v: int) -> exp.Expression:
    return exp.Neg(this=exp.Literal.number(-v)) if v < 0 else exp.Literal.number(v)


def weight_rows(model: Model) -> list[tuple[int, int, int, float]]:
    """The model's parameters as ``(layer, i, j, value)`` rows, in layer, i, j order (bias rows first).

    >>> import numpy as np
    >>> m = Model(features=["x"], target="y", task="regression", head="identity", activations=[],
    ...           weights=[(np.array([[2.0]]), np.array([0.5]))])
    >>> weight_rows(m)
    [(1, -1, 0, 0.5), (1, 0, 0, 2.0)]
    """
    rows: list[tuple[int, int, int, float]] = []
    for k, (w, b) in enumerate(model.weights, start=1):
        w, b = np.asarray(w, float), np.asarray(b, float)
        rows += [(k, BIAS, j, float(v)) for j, v in enumerate(b)]
        rows += [(k, i, j, float(w[i, j])) for i in range(w.shape[0]) for j in range(w.shape[1])]
    return rows


def weights_statements(model: Model, weights_table: str, create: bool = True) -> list[exp.Expression]:
    """``CREATE TABLE`` (with ``create``) or ``DELETE FROM`` (to refill an existing table), then the
    ``INSERT`` statements of the model's weights, :data:`INSERT_BATCH` rows each."""
    name = table(qualified(weights_table))
    out: list[exp.Expression] = []
    if create:
        types = {"layer": "INT", "i": "INT", "j": "INT", "value": "DOUBLE"}
        schema = exp.Schema(
            this=name.copy(),
            expressions=[
                exp.ColumnDef(
                    this=ident(c),
                    kind=exp.DataType.build(types[c]),
                    constraints=[exp.ColumnConstraint(kind=exp.NotNullColumnConstraint())],
                )
                for c in WEIGHT_COLUMNS
            ],
        )
        out.append(exp.Create(this=schema, kind="TABLE"))
    else:
        out.append(exp.Delete(this=name.copy()))
    rows = weight_rows(model)
    target = exp.Schema(this=name.copy(), expressions=[ident(c) for c in WEIGHT_COLUMNS])
    for start in range(0, len(rows), INSERT_BATCH):
        values = exp.Values(
            expressions=[
                exp.Tuple(expressions=[_int(k), _int(i), _int(j), num(v)])
                for k, i, j, v in rows[start : start + INSERT_BATCH]
            ]
        )
        out.append(exp.Insert(this=target.copy(), expression=values))
    return out


def scoring_query(
    model: Model,
    dialect: str = "duckdb",
    table_name: str = "data",
    columns: Sequence[str] | None = None,
    weights_table: str | None = None,
) -> exp.Select:
    """The query that scores ``table_name``: ``columns`` (default: the model's features; the features
    are added when missing) and the prediction columns of ``sqlgrad predict``."""
    caps = capabilities_for(dialect)
    features = model.features or [f"x{i}" for i in range(model.spec.n_inputs)]
    keep = list(dict.fromkeys(columns or []))
    keep += [f for f in features if f not in keep]
    params = weights_pivot(model, weights_table) if weights_table else None
    return model.predict_select(
        keep, table(qualified(table_name)), native_tanh=caps.native_tanh, params=params
    )


def export_statements(
    model: Model,
    dialect: str = "duckdb",
    *,
    table_name: str = "data",
    columns: Sequence[str] | None = None,
    view: str | None = None,
    replace: bool = False,
    weights_table: str | None = None,
    weights_only: bool = False,
) -> list[exp.Expression]:
    """The statements of an export: ``[CREATE TABLE weights, INSERT ...]`` when ``weights_table`` is
    given, then the scoring query or ``CREATE [OR REPLACE] VIEW view AS`` it. ``weights_only`` gives only
    ``DELETE FROM weights`` and the inserts, to put a retrained model's weights under an exported view."""
    from .train import view_statement

    if weights_only and not weights_table:
        raise UsageError("--weights-only needs --weights-table")
    if replace and not view:
        raise UsageError("--replace applies to --view")
    out: list[exp.Expression] = []
    if weights_table:
        out += weights_statements(model, weights_table, create=not weights_only)
        if weights_only:
            return out
    query = scoring_query(model, dialect, table_name, columns, weights_table)
    if view:
        v = qualified(view)
        out.append(view_statement(".".join(v) if len(v) > 1 else view, query, replace))
    else:
        out.append(query)
    return out


def render_statements(statements: Sequence[exp.Expression], dialect: str, pretty: bool = True) -> list[str]:
    """Each statement as SQL text, shaped as the dialect's engine adapter renders it (derived tables
    fenced by ``OFFSET 0`` on PostgreSQL and by ``LIMIT`` on MariaDB/MySQL, nested levels as a ``WITH``
    list on SQLite)."""
    caps = capabilities_for(dialect)
    out = []
    for st in statements:
        if caps.fence_subqueries:
            st = fence_subqueries(st)
        if dialect in _FENCE_BY_LIMIT:
            st = _fence_by_limit(st)
        if caps.ctes_for_derived_tables:
            from sqlglot.optimizer.eliminate_subqueries import eliminate_subqueries

            st = eliminate_subqueries(st.copy())
        try:
            out.append(render(st, dialect, pretty))
        except (SqlglotError, ValueError) as err:
            raise UsageError(f"cannot render for dialect {dialect!r}: {err}") from err
    return out


def _fence_by_limit(statement: exp.Expression) -> exp.Expression:
    """A copy where every derived table without a LIMIT gets ``LIMIT`` :data:`LIMIT_FENCE`."""
    statement = statement.copy()
    for sub in list(statement.find_all(exp.Subquery)):
        inner = sub.this
        joined = isinstance(sub.parent, exp.From | exp.Join)
        if joined and isinstance(inner, exp.Select) and not inner.args.get("limit"):
            inner.set("limit", exp.Limit(expression=exp.Literal.number(LIMIT_FENCE)))
    return statement


def export_sql(
    model: Model,
    dialect: str = "duckdb",
    *,
    table_name: str = "data",
    columns: Sequence[str] | None = None,
    view: str | None = None,
    replace: bool = False,
    weights_table: str | None = None,
    weights_only: bool = False,
    pretty: bool = True,
) -> str:
    """The whole export as one SQL script: statements separated by ``;`` and a blank line."""
    statements = export_statements(
        model,
        dialect,
        table_name=table_name,
        columns=columns,
        view=view,
        replace=replace,
        weights_table=weights_table,
        weights_only=weights_only,
    )
    return ";\n\n".join(render_statements(statements, dialect, pretty)) + ";"
