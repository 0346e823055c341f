"""Data sources and preparation in SQL.

A source is a table or view of the engine (optionally schema-qualified) or, on engines that read files,
a CSV/Parquet/JSON path. Preparation validates the columns, picks the task, finds the classes, applies
the NULL policy, fits the encoding of the features, and writes the training rows into a temporary table
of the run: the network's inputs ``x_0 .. x_{n-1}`` as DOUBLE and ``y`` as the class index (softmax),
0/1 (sigmoid) or the DOUBLE target (regression). The user's relation is only ever read.

Each feature column is encoded by a :class:`ColumnPrep`, which the model keeps (its ``preprocessing``
section), so that prediction takes raw rows:

- numeric (integer, float, decimal): ``CAST(col AS DOUBLE)``, standardised during training as
  ``(x - mean) / std`` (population std over the training rows, one aggregate statement; a constant
  column gets std 1). The model folds the standardisation into its first layer (see
  :func:`fold_standardization`), so its weights act on the raw value;
- boolean: 1.0 / 0.0;
- text: one-hot, one input per category for the ``max_categories`` most frequent values (ties in the
  engine's value order), and an ``other`` input when there were more; at prediction an unseen value
  counts as ``other`` (all zeros when the model has no ``other`` input);
- dates, times and other types are refused with the column's name (convert them in a view, e.g. to
  epoch seconds, or leave the column out with ``--exclude``).

NULLs: by default a NULL in a feature or the target is an error naming the column and the count;
``impute`` fills features with a value computed in SQL (``mean``, ``median`` or ``most-frequent`` for
numeric columns; always the most frequent value for boolean and text columns), applied as ``COALESCE`` in
training and prediction; ``drop_nulls`` skips the rows with a NULL in a column that is not filled.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from sqlglot import exp

from .engines.base import Column, Engine
from .errors import (
    ColumnNotFoundError,
    DataError,
    EngineError,
    ModelFileError,
    TableNotFoundError,
    UsageError,
)
from .sqlexpr import alias, case, col, eq, num, table, to_double, value_literal

FILE_READERS = {
    ".csv": "read_csv",
    ".tsv": "read_csv",
    ".txt": "read_csv",
    ".parquet": "read_parquet",
    ".pq": "read_parquet",
    ".json": "read_json",
    ".jsonl": "read_json",
    ".ndjson": "read_json",
}

CSV_TYPE_CANDIDATES = ("BIGINT", "DOUBLE", "TIME", "DATE", "TIMESTAMP", "VARCHAR")
"""Types DuckDB may infer for CSV columns: all its defaults but BOOLEAN, which would turn ``yes``/``no``
labels into ``true``/``false``; text stays text, so predictions come back in the file's own values."""

MAX_CLASSES = 1000
"""More distinct labels than this is almost certainly a regression target or an id column."""

INTEGER_CLASSIFICATION_LIMIT = 20
"""With ``--task auto``, an integer target with at most this many distinct values is a class label."""


QUERY_ALIAS = "__sg_query"
"""The derived table's name for a :class:`~sqlgrad.sources.Query` in the SQL generated around it."""


@dataclass(frozen=True)
class DataSource:
    """A relation to read: ``parts`` of a table name, a file ``path``, or a parsed ``query``
    (:class:`sqlgrad.sources.Query`); ``name`` replaces the label in messages."""

    parts: tuple[str, ...] = ()
    path: str | None = None
    query: exp.Query | None = None
    name: str | None = None

    @property
    def label(self) -> str:
        if self.name is not None:
            return self.name
        return self.path if self.path is not None else ".".join(self.parts)

    def relation(self) -> exp.Expression:
        """A FROM-able sqlglot expression (a quoted table, a file-reading table function, or the
        query as a derived table)."""
        if self.query is not None:
            name = exp.to_identifier(QUERY_ALIAS, quoted=True)
            return exp.Subquery(this=self.query.copy(), alias=exp.TableAlias(this=name))
        if self.path is not None:
            reader = FILE_READERS[os.path.splitext(self.path)[1].lower()]
            args: list[exp.Expression] = [exp.Literal.string(self.path)]
            if reader == "read_csv":
                types = exp.Array(expressions=[exp.Literal.string(t) for t in CSV_TYPE_CANDIDATES])
                args.append(exp.EQ(this=exp.column("auto_type_candidates"), expression=types))
            return exp.Table(this=exp.Anonymous(this=reader, expressions=args))
        return table(list(self.parts))


def is_file_argument(data: str) -> bool:
    return os.path.splitext(data)[1].lower() in FILE_READERS


def resolve_source(engine: Engine, data: str) -> DataSource:
    """A user's DATA argument as a :class:`DataSource`, checked to exist.

    A name is first looked up as it is (so names with dots, quotes or spaces work); if no such table
    exists and it has dots, as ``schema.table`` or ``catalog.schema.table``.
    """
    if not data:
        raise UsageError("DATA must name a table, a view or a file")
    if is_file_argument(data):
        if not os.path.exists(data):
            raise TableNotFoundError(f"file not found: {data}")
        if not engine.capabilities.reads_files:
            raise UsageError(
                f"{type(engine).__name__} cannot read files: load it first with "
                f"'sqlgrad load {data} --db URL --table NAME'"
            )
        src = DataSource(path=data)
        try:
            engine.describe(src.relation())
        except EngineError as err:
            raise DataError(f"cannot read {data}: {err}") from err
        return src
    candidates = [(data,)]
    if "." in data:
        pieces = tuple(data.split("."))
        if 2 <= len(pieces) <= 3 and all(pieces):
            candidates.append(pieces)
    for parts in candidates:
        if engine.table_exists(parts):
            return DataSource(parts=parts)
    raise TableNotFoundError(f"no table or view named {data!r} in {engine.url}")


IMPUTE_STRATEGIES = ("mean", "median", "most-frequent")
"""Fill values for NULL features (``--impute``): for numeric columns the mean, the median or the most
frequent value; boolean and text columns are always filled with their most frequent value."""

MAX_CATEGORIES = 20
"""Default number of categories one-hot encoded per text column (``--max-categories``)."""

FEATURE_KINDS = {"integer": "numeric", "float": "numeric", "boolean": "boolean", "text": "categorical"}
"""The encoding of a feature by the kind of its column (:attr:`Column.kind`)."""

OTHER = "<other>"
"""Name suffix of the input that a text column's rarer (and unseen) values switch on."""


@dataclass(frozen=True)
class PrepOptions:
    """How :func:`prepare` fits the preparation of the features (see the module's docstring)."""

    standardize: bool = False
    impute: str | None = None
    drop_nulls: bool = False
    max_categories: int = MAX_CATEGORIES
    exclude: tuple[str, ...] = ()

    def check(self) -> None:
        if self.impute is not None and self.impute not in IMPUTE_STRATEGIES:
            raise UsageError(f"unknown imputation {self.impute!r}; choose {', '.join(IMPUTE_STRATEGIES)}")
        m = self.max_categories
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise UsageError(f"max categories must be a whole number >= 1, got {m!r}")


@dataclass(frozen=True)
class ColumnPrep:
    """The encoding of one feature column into network inputs, as kept in the model file.

    Attributes:
        column: the user's column name.
        kind: ``numeric`` (one DOUBLE input), ``boolean`` (one 0/1 input) or ``categorical`` (one-hot).
        categories: the one-hot categories, most frequent first (``categorical``).
        other: whether a ``categorical`` column has an extra input for every other value.
        fill: the value a NULL is replaced with (imputation), or None (a NULL stays NULL).
        mean, std: the standardisation the network was trained with (``numeric``), or None. The
            model stores its weights with it folded into the first layer, so a prediction reads the
            raw value; inside :func:`prepare` (and with ``standardized=True``) it is applied in SQL.
        constant: the column had one value in training (std 0, taken as 1): its standardised input was
            0 on every row, so it learnt nothing and the folded model gives it no weight.

    >>> p = ColumnPrep("colour", "categorical", categories=("red", "blue"), other=True)
    >>> p.width, p.input_names()
    (3, ['colour=red', 'colour=blue', 'colour=<other>'])
    >>> [e.sql("duckdb") for e in ColumnPrep("x", "numeric", fill=2.5, mean=1, std=4).inputs(True)]
    ['(COALESCE(CAST("x" AS DOUBLE), CAST(2.5 AS DOUBLE)) - 1) / 4']
    """

    column: str
    kind: str
    categories: tuple = ()
    other: bool = False
    fill: Any = None
    mean: float | None = None
    std: float | None = None
    constant: bool = False

    @property
    def width(self) -> int:
        """The number of network inputs this column becomes."""
        return len(self.categories) + int(self.other) if self.kind == "categorical" else 1

    @property
    def standardized(self) -> bool:
        return self.mean is not None

    def input_names(self) -> list[str]:
        if self.kind != "categorical":
            return [self.column]
        names = [f"{self.column}={c}" for c in self.categories]
        return [*names, f"{self.column}={OTHER}"] if self.other else names

    def inputs(self, standardized: bool = False) -> list[exp.Expression]:
        """The SQL expressions of this column's inputs over a relation with the raw column.

        ``standardized`` applies ``(x - mean) / std`` (training); a prediction reads the raw value.
        A NULL gives NULL inputs unless there is a ``fill``.
        """
        if self.kind == "numeric":
            x = to_double(col(self.column))
            if self.fill is not None:
                x = exp.Coalesce(this=x, expressions=[num(float(self.fill))])
            if standardized and self.mean is not None and self.std is not None:
                x = exp.Div(this=exp.Paren(this=x - num(self.mean)), expression=num(self.std))
            return [x]
        if self.kind == "boolean":
            value = col(self.column)
            default = None if self.fill is None else num(int(bool(self.fill)))
            return [to_double(case([(value, num(1)), (exp.Not(this=value.copy()), num(0))], default))]
        value = col(self.column)
        if self.fill is not None:
            value = exp.Coalesce(this=value, expressions=[value_literal(self.fill)])
        # a NULL gives NULL inputs (so a NULL prediction), unless it is filled
        null = (
            [] if self.fill is not None else [(exp.Is(this=value.copy(), expression=exp.Null()), exp.Null())]
        )
        out = [
            to_double(case([*null, (eq(value.copy(), value_literal(c)), num(1))], num(0)))
            for c in self.categories
        ]
        if self.other:
            known = exp.In(this=value.copy(), expressions=[value_literal(c) for c in self.categories])
            out.append(to_double(case([*null, (known, num(0))], num(1))))
        return out

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"column": self.column, "kind": self.kind}
        if self.kind == "categorical":
            out["categories"] = list(self.categories)
            out["other"] = self.other
        if self.fill is not None:
            out["fill"] = self.fill
        if self.mean is not None:
            out["mean"] = self.mean
            out["std"] = self.std
            if self.constant:
                out["constant"] = True
        return out

    @classmethod
    def from_dict(cls, data: Any, origin: str = "model") -> ColumnPrep:
        """One entry of a model file's ``preprocessing`` list, checked."""
        if not isinstance(data, dict) or not isinstance(data.get("column"), str):
            raise ModelFileError(f"{origin}: each preprocessing entry needs a 'column' name")
        name, kind = data["column"], data.get("kind")
        if kind not in ("numeric", "boolean", "categorical"):
            raise ModelFileError(f"{origin}: column {name!r} has an unknown preprocessing kind {kind!r}")
        fill = data.get("fill")
        categories: tuple = ()
        if kind == "categorical":
            cats = data.get("categories")
            if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
                raise ModelFileError(f"{origin}: column {name!r} needs a list of text 'categories'")
            if not cats:
                raise ModelFileError(f"{origin}: column {name!r} has no categories")
            categories = tuple(cats)
            if fill is not None and not isinstance(fill, str):
                raise ModelFileError(f"{origin}: column {name!r} has a non-text fill value")
        elif kind == "boolean" and fill is not None and not isinstance(fill, bool):
            raise ModelFileError(f"{origin}: column {name!r} has a non-boolean fill value")
        elif kind == "numeric" and fill is not None and not _finite(fill):
            raise ModelFileError(f"{origin}: column {name!r} has a fill value that is not a finite number")
        mean, std = data.get("mean"), data.get("std")
        if mean is not None or std is not None:
            if kind != "numeric" or not (_finite(mean) and _finite(std)) or not std > 0:
                raise ModelFileError(f"{origin}: column {name!r} has a bad mean/std")
            mean, std = float(mean), float(std)
        constant = data.get("constant", False)
        if not isinstance(constant, bool) or (constant and mean is None):
            raise ModelFileError(f"{origin}: column {name!r} has a bad 'constant'")
        return cls(name, kind, categories, bool(data.get("other", False)), fill, mean, std, constant)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def raw_encoding(features: Sequence[str]) -> list[ColumnPrep]:
    """The encoding of a model without a ``preprocessing`` section: every feature ``CAST`` to DOUBLE."""
    return [ColumnPrep(f, "numeric") for f in features]


def encode(preps: Sequence[ColumnPrep], standardized: bool = False) -> list[exp.Expression]:
    """The network's inputs, in order, as SQL expressions over the raw columns."""
    return [e for p in preps for e in p.inputs(standardized)]


def needs_section(preps: Sequence[ColumnPrep]) -> bool:
    """Whether an encoding differs from :func:`raw_encoding` (then the model file keeps it)."""
    return any(p.kind != "numeric" or p.fill is not None or p.mean is not None for p in preps)


def _standardized_inputs(preps: Sequence[ColumnPrep]) -> list[tuple[int, ColumnPrep]]:
    out, k = [], 0
    for p in preps:
        if p.mean is not None and p.std is not None:
            out.append((k, p))
        k += p.width
    return out


def fold_standardization(weights: list, preps: Sequence[ColumnPrep]) -> list:
    """Weights over the raw inputs equal to ``weights`` over the standardised ones.

    For a standardised input ``i``: ``W'[i] = W[i] / std_i`` and ``b' = b - sum_i mean_i * W'[i]``, so
    that ``x @ W' + b' == ((x - mean) / std) @ W + b`` (up to rounding, which grows with
    ``|mean| / std``). A constant column's input was 0 on every training row: its row becomes 0 (no
    offset, so no rounding). Other layers are unchanged.
    """
    cols = _standardized_inputs(preps)
    if not cols:
        return [(np.array(w, float), np.array(b, float)) for w, b in weights]
    w0, b0 = np.array(weights[0][0], float), np.array(weights[0][1], float)
    with np.errstate(over="ignore", invalid="ignore"):
        for k, p in cols:
            w0[k] = 0.0 if p.constant else w0[k] / p.std
        for k, p in cols:
            b0 = b0 - p.mean * w0[k]
    if not (np.all(np.isfinite(w0)) and np.all(np.isfinite(b0))):
        raise DataError(
            "the standardisation of the features does not fit in doubles once folded into the weights "
            "(a column with a tiny spread or huge values); train with --no-standardize"
        )
    rest = [(np.array(w, float), np.array(b, float)) for w, b in weights[1:]]
    return [(w0, b0), *rest]


def unfold_standardization(weights: list, preps: Sequence[ColumnPrep]) -> list:
    """The inverse of :func:`fold_standardization`: weights over the raw inputs -> standardised inputs."""
    cols = _standardized_inputs(preps)
    w0, b0 = np.array(weights[0][0], float), np.array(weights[0][1], float)
    for k, p in cols:
        b0 = b0 + p.mean * w0[k]
    for k, p in cols:
        w0[k] = w0[k] * p.std
    return [(w0, b0), *[(np.array(w, float), np.array(b, float)) for w, b in weights[1:]]]


@dataclass(frozen=True)
class Rows:
    """The rows a run reads: a relation and, with ``drop_nulls``, a filter. The filter is a WHERE of
    each query rather than a derived table, which SQLite would not let columns named TRUE or FALSE
    cross."""

    relation: exp.Expression
    where: exp.Expression | None = None

    def select(self, *exprs: exp.Expression, qualify: str | None = None) -> exp.Select:
        """``SELECT exprs FROM relation [WHERE filter]``; ``qualify`` aliases the relation and qualifies
        the filter's columns with it."""
        relation, where = self.relation.copy(), self.where.copy() if self.where is not None else None
        if qualify is not None:
            relation.set("alias", exp.TableAlias(this=exp.to_identifier(qualify, quoted=True)))
            where = _qualify_columns(where, qualify) if where is not None else None
        query = exp.select(*exprs).from_(relation, copy=False)
        return query.where(where, copy=False) if where is not None else query

    def where_also(self, cond: exp.Expression) -> Rows:
        return Rows(self.relation, exp.and_(self.where.copy(), cond) if self.where is not None else cond)


@dataclass
class PreparedData:
    """The training rows of a run, in a temporary table, with what was learned about them."""

    source: DataSource
    table: str
    features: list[str]
    target: str
    task: str
    head: str
    classes: list | None
    n_rows: int
    notes: list[str] = field(default_factory=list)
    preprocessing: list[ColumnPrep] = field(default_factory=list)

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.head == "softmax" and self.classes else 1

    @property
    def n_inputs(self) -> int:
        return sum(p.width for p in self.preprocessing) if self.preprocessing else len(self.features)


def _feature_kind(c: Column, hint: str) -> str:
    """The encoding of a feature column, or a one-line error naming it."""
    if c.kind in FEATURE_KINDS:
        return FEATURE_KINDS[c.kind]
    if c.kind == "temporal":
        raise DataError(
            f"feature column {c.name!r} is {c.type}: dates and times are not converted; turn it into a "
            f"number in a view (e.g. epoch seconds) or {hint}"
        )
    raise DataError(f"feature column {c.name!r} is {c.type}: not numeric, boolean or text; {hint}")


def choose_features(
    columns: list[Column], target: str, features: Sequence[str] | None, exclude: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    """The feature columns (given, or every column but the target and ``exclude``) and notes.

    Numeric, boolean and text columns can be features; any other type is an error naming the column.
    """
    by_name = {c.name: c for c in columns}
    notes: list[str] = []
    missing = [f for f in exclude if f not in by_name]
    if missing:
        raise ColumnNotFoundError(f"excluded column {missing[0]!r} is not in the data")
    if features:
        if exclude:
            raise UsageError("give the features or the columns to exclude, not both")
        missing = [f for f in features if f not in by_name]
        if missing:
            raise ColumnNotFoundError(f"feature column {missing[0]!r} is not in the data")
        if target in features:
            raise UsageError(f"the target {target!r} cannot also be a feature")
        if len(set(features)) != len(features):
            raise UsageError("a feature column is listed twice")
        for f in features:
            _feature_kind(by_name[f], "leave it out of --features")
        return list(features), notes
    if target in exclude:
        raise UsageError(f"the target {target!r} cannot be excluded")
    chosen = [c.name for c in columns if c.name != target and c.name not in exclude]
    for f in chosen:
        _feature_kind(by_name[f], f"leave it out with --exclude {f}")
    if not chosen:
        raise DataError("no feature columns besides the target")
    return chosen, notes


def _infer_task(engine: Engine, relation: exp.Expression, target: Column) -> str:
    kind = target.kind
    if kind in ("text", "boolean"):
        return "classification"
    if kind == "float":
        return "regression"
    if kind == "integer":
        distinct = engine.scalar(
            exp.select(exp.Count(this=exp.Distinct(expressions=[col(target.name)]))).from_(relation)
        )
        return "classification" if distinct <= INTEGER_CLASSIFICATION_LIMIT else "regression"
    raise DataError(f"target column {target.name!r} is {target.type}: it must be numeric, boolean or text")


def prepare(
    engine: Engine,
    src: DataSource,
    target: str,
    features: Sequence[str] | None,
    task: str,
    head: str | None,
    table_name: str,
    classes: list | None = None,
    options: PrepOptions | None = None,
    encoding: Sequence[ColumnPrep] | None = None,
) -> PreparedData:
    """Validate the data and write the training rows into the temporary table ``table_name``.

    ``options`` say how to fit the preparation (standardisation, imputation, NULL rows, categories).
    ``encoding`` is a model's encoding to reuse instead of fitting one (evaluation, or training from
    ``--init``): its categories and fill values are kept (fills are recomputed when ``options.impute``
    is set); its standardisation is not (it is folded into that model's weights): ``options.standardize``
    fits a new one.
    """
    options = options or PrepOptions()
    options.check()
    columns = engine.describe(src.relation())
    by_name = {c.name: c for c in columns}
    if target not in by_name:
        raise ColumnNotFoundError(f"target column {target!r} is not in {src.label}")
    feats, notes = choose_features(columns, target, features, options.exclude)
    layout = {p.column: p for p in encoding} if encoding is not None else None
    if layout is not None and set(layout) != set(feats):
        raise UsageError("the features differ from those of the model's preprocessing")
    if task == "auto":
        task = _infer_task(engine, src.relation(), by_name[target])
        notes.append(f"task: {task} (from the target's type; set --task to change)")
    if task not in ("classification", "regression"):
        raise UsageError(f"unknown task {task!r}; choose auto, classification or regression")
    if task == "regression":
        if by_name[target].kind not in ("integer", "float"):
            raise DataError(f"regression needs a numeric target; {target!r} is {by_name[target].type}")
        if head not in (None, "identity"):
            raise UsageError(f"regression uses the identity head, not {head!r}")
        head = "identity"
    else:
        head = head or "softmax"
        if head not in ("softmax", "sigmoid"):
            raise UsageError(f"classification uses a softmax or sigmoid head, not {head!r}")

    if options.impute is not None:
        filled = set(feats)
    elif layout is not None:
        filled = {f for f in feats if layout[f].fill is not None}
    else:
        filled = set()
    floats = [f for f in feats if by_name[f].kind == "float"]
    if by_name[target].kind == "float":
        floats.append(target)
    rows = _check_rows(engine, src, [*feats, target], floats, filled, options.drop_nulls, notes)

    if task == "classification":
        found = _classes(engine, rows, target)
        if classes is None:
            classes = found
        else:
            unknown = [c for c in found if c not in classes]
            if unknown:
                raise DataError(f"label {unknown[0]!r} of {target!r} is not one of the model's classes")
        if len(classes) < 2:
            raise DataError(f"target {target!r} has a single class ({classes[0]!r}): nothing to learn")
        if head == "sigmoid" and len(classes) != 2:
            raise UsageError(f"a sigmoid head needs exactly 2 classes; {target!r} has {len(classes)}")
        if len(classes) > MAX_CLASSES:
            raise DataError(f"target {target!r} has {len(classes)} distinct values: too many classes")

    preps = _fit_encoding(engine, rows, feats, by_name, options, layout, notes)
    select = prepare_select(rows.relation, feats, target, task, head, classes, preps, standardized=True)
    if rows.where is not None:
        select = select.where(rows.where.copy(), copy=False)
    engine.execute(create_temp_table(table_name, select))
    n_rows = engine.scalar(exp.select(exp.Count(this=exp.Star())).from_(table(table_name)))
    return PreparedData(src, table_name, feats, target, task, head, classes, int(n_rows), notes, preps)


def prepare_select(
    relation: exp.Expression,
    features: Sequence[str],
    target: str,
    task: str,
    head: str,
    classes: list | None,
    preprocessing: Sequence[ColumnPrep] | None = None,
    standardized: bool = False,
) -> exp.Select:
    """``SELECT <input 0> AS x_0, ..., <label index or DOUBLE target> AS y FROM relation``.

    The inputs are the ``preprocessing`` encoding of the features (default: each ``CAST`` to DOUBLE);
    ``standardized`` applies the encoding's standardisation (a run's own training rows).
    """
    preps = list(preprocessing) if preprocessing is not None else raw_encoding(features)
    inputs = encode(preps, standardized)
    select = exp.select(*(alias(e, f"x_{i}") for i, e in enumerate(inputs)))
    y = label_index(col(target), classes, head) if task == "classification" else to_double(col(target))
    return select.select(alias(y, "y"), copy=False).from_(relation)


def create_temp_table(name: str, select: exp.Expression) -> exp.Create:
    """``CREATE TEMPORARY TABLE name AS select``."""
    return exp.Create(
        this=table(name),
        kind="TABLE",
        expression=select,
        properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
    )


def label_index(target: exp.Expression, classes: list | None, head: str) -> exp.Expression:
    """The class index of a label (0-based, in the model's class order); for a sigmoid head 0.0/1.0."""
    assert classes is not None
    ifs = [(eq(target.copy(), value_literal(c)), num(i)) for i, c in enumerate(classes)]
    expr = case(ifs, None)
    return to_double(expr) if head == "sigmoid" else expr


def _count_if(cond: exp.Expression, name: str) -> exp.Expression:
    return alias(exp.Sum(this=case([(cond, num(1))], num(0))), name)


def _is_null(c: str) -> exp.Expression:
    return exp.Is(this=col(c), expression=exp.Null())


def _check_rows(
    engine: Engine,
    src: DataSource,
    columns: list[str],
    floats: list[str],
    filled: set[str],
    drop_nulls: bool,
    notes: list[str],
) -> Rows:
    """Refuse an empty relation, NULLs (unless ``filled`` or dropped) in ``columns`` and NaN or infinite
    values in ``floats``; returns the rows to use (with ``drop_nulls``: without the rows that have a
    NULL in a column that is not filled)."""
    counts = [alias(exp.Count(this=exp.Star()), "n")]
    counts += [_count_if(_is_null(c), f"null_{i}") for i, c in enumerate(columns)]
    # |x| > the largest double: true for infinities, and for NaN on engines that order NaN above every
    # number (DuckDB, PostgreSQL, Spark); SQLite and MariaDB cannot store either.
    counts += [
        _count_if(exp.GT(this=exp.Abs(this=col(c)), expression=num(sys.float_info.max)), f"nonfinite_{i}")
        for i, c in enumerate(floats)
    ]
    row = engine.query(exp.select(*counts).from_(src.relation()))[0]
    if row[0] == 0:
        raise DataError(f"{src.label} has no rows")
    nulls = dict(zip(columns, (int(v or 0) for v in row[1 : 1 + len(columns)]), strict=True))
    for c, bad in zip(floats, row[1 + len(columns) :], strict=True):
        if bad:
            raise DataError(f"column {c!r} has {int(bad)} NaN or infinite values")
    unfilled = [c for c in columns if nulls[c] and c not in filled]
    if not unfilled:
        return Rows(src.relation())
    if not drop_nulls:
        c = unfilled[0]
        hint = "pass --drop-nulls to skip those rows" if c == columns[-1] else "pass --impute or --drop-nulls"
        raise DataError(f"column {c!r} has {nulls[c]} NULL values; remove or fill them, or {hint}")
    rows = Rows(src.relation(), exp.and_(*(exp.Not(this=_is_null(c)) for c in unfilled)))
    kept = int(engine.scalar(rows.select(exp.Count(this=exp.Star()))) or 0)
    if kept == 0:
        raise DataError(f"every row of {src.label} has a NULL in {', '.join(map(repr, unfilled))}")
    notes.append(f"skipped {int(row[0]) - kept} rows with NULL values (--drop-nulls)")
    return rows


def _frequencies(engine: Engine, rows: Rows, column: str, limit: int) -> list[tuple]:
    """The ``limit`` most frequent non-NULL values of ``column`` with their counts, most frequent first
    (ties in the engine's order of the values)."""
    value, count = "__sg_value", "__sg_count"
    query = (
        rows.where_also(exp.Not(this=_is_null(column)))
        .select(alias(col(column), value), alias(exp.Count(this=exp.Star()), count))
        .group_by(col(column))
        .order_by(exp.Ordered(this=col(count), desc=True), exp.Ordered(this=col(value)))
        .limit(limit)
    )
    return [(_plain(v), int(n)) for v, n in engine.query(query)]


def _median_fills(engine: Engine, rows: Rows, columns: list[str]) -> list[Any]:
    """The median of each column (over its non-NULL values), as ``numpy.median`` defines it.

    With ``Capabilities.percentile_cont``: one aggregate statement of ``PERCENTILE_CONT(0.5) WITHIN
    GROUP (ORDER BY x)``. Elsewhere, per column: the mean of the middle row(s) by ``ROW_NUMBER()`` over
    the sorted values (``2*r`` between ``n`` and ``n + 2``).
    """
    if not columns:
        return []
    caps = engine.capabilities
    if caps.percentile_cont:
        aggs = [
            exp.WithinGroup(
                this=exp.PercentileCont(this=exp.Literal.number("0.5")),
                expression=exp.Order(expressions=[exp.Ordered(this=to_double(col(c)))]),
            )
            for c in columns
        ]
        return list(engine.query(rows.select(*aggs))[0])
    if not caps.window_functions:
        raise UsageError(
            f"{type(engine).__name__} has neither PERCENTILE_CONT nor window functions: "
            "use --impute mean or most-frequent"
        )
    out = []
    v, r, n = "__sg_v", "__sg_r", "__sg_n"
    for c in columns:
        values = rows.where_also(exp.Not(this=_is_null(c))).select(alias(to_double(col(c)), v))
        ranked = exp.select(
            col(v),
            alias(
                exp.Window(this=exp.RowNumber(), order=exp.Order(expressions=[exp.Ordered(this=col(v))])), r
            ),
            alias(exp.Window(this=exp.Count(this=exp.Star())), n),
        ).from_(values.subquery("__sg_values"))
        middle = exp.and_(
            exp.GTE(this=num(2) * col(r), expression=col(n)),
            exp.LTE(this=num(2) * col(r), expression=col(n) + num(2)),
        )
        out.append(
            engine.scalar(
                exp.select(exp.Avg(this=col(v))).from_(ranked.subquery("__sg_ranked")).where(middle)
            )
        )
    return out


def _standardization(engine: Engine, rows: Rows, preps: list[ColumnPrep]) -> list[tuple[float, float]]:
    """``(mean, population std)`` of each numeric column (after its fill), by one aggregate statement:
    ``SELECT MAX(m_i), SQRT(AVG((x_i - m_i) * (x_i - m_i))) FROM rows, (SELECT AVG(x_i) AS m_i FROM rows)``
    (two passes over the rows, as numpy's ``std``, so no cancellation)."""
    outer, means = "__sg_r", "__sg_m"
    values = [p.inputs(False)[0] for p in preps]
    inner = rows.select(*(alias(exp.Avg(this=v.copy()), f"m_{i}") for i, v in enumerate(values)))
    aggs: list[exp.Expression] = []
    for i, v in enumerate(values):
        x = _qualify_columns(v.copy(), outer)
        m = col(f"m_{i}", table=means)
        d = exp.Paren(this=x - m.copy())
        aggs.append(exp.Max(this=m))
        aggs.append(exp.Sqrt(this=exp.Avg(this=d * d.copy())))
    means_table = exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(means, quoted=True)))
    query = rows.select(*aggs, qualify=outer).join(means_table, join_type="cross")
    row = engine.query(query)[0]
    return [(row[2 * i], row[2 * i + 1]) for i in range(len(values))]


def _qualify_columns(e: exp.Expression, table_alias: str) -> exp.Expression:
    for c in e.find_all(exp.Column):
        c.set("table", exp.to_identifier(table_alias, quoted=True))
    return e


def _fit_encoding(
    engine: Engine,
    rows: Rows,
    feats: list[str],
    by_name: dict[str, Column],
    options: PrepOptions,
    layout: dict[str, ColumnPrep] | None,
    notes: list[str],
) -> list[ColumnPrep]:
    """The encoding of the features: the model's (``layout``) or fitted on ``rows`` by SQL queries."""
    preps: list[ColumnPrep] = []
    for f in feats:
        if layout is not None:
            preps.append(replace(layout[f], mean=None, std=None, constant=False))
            continue
        kind = FEATURE_KINDS[by_name[f].kind]
        if kind != "categorical":
            preps.append(ColumnPrep(f, kind))
            continue
        top = _frequencies(engine, rows, f, options.max_categories + 1)
        if not top:
            raise DataError(f"text column {f!r} has only NULL values")
        other = len(top) > options.max_categories
        cats = tuple(str(v) for v, _ in top[: options.max_categories])
        if other:
            notes.append(
                f"column {f!r}: the {options.max_categories} most frequent values one-hot encoded, "
                "the others as 'other'"
            )
        preps.append(ColumnPrep(f, "categorical", categories=cats, other=other))

    if options.impute is not None:
        preps = _fit_fills(engine, rows, preps, options.impute)
    if options.standardize:
        numeric = [k for k, p in enumerate(preps) if p.kind == "numeric"]
        stats = _standardization(engine, rows, [preps[k] for k in numeric]) if numeric else []
        for k, (mean, std) in zip(numeric, stats, strict=True):
            name = preps[k].column
            if mean is None or std is None or not (math.isfinite(mean) and math.isfinite(std)):
                raise DataError(
                    f"column {name!r} is too large to standardise in doubles; train with --no-standardize"
                )
            if std == 0:
                notes.append(f"column {name!r} is constant: std taken as 1; it has no weight in the model")
                preps[k] = replace(preps[k], mean=float(mean), std=1.0, constant=True)
                continue
            if abs(mean) > 1e8 * std:
                notes.append(
                    f"column {name!r}: |mean| / std is {abs(mean) / std:.1e}; folded into the weights, the "
                    "standardisation costs predictions that many times the rounding error (centre the "
                    "column in a view to avoid it)"
                )
            preps[k] = replace(preps[k], mean=float(mean), std=float(std))
    return preps


def _fit_fills(engine: Engine, rows: Rows, preps: list[ColumnPrep], strategy: str) -> list[ColumnPrep]:
    """Each feature's fill value for ``--impute strategy``, computed in SQL over the non-NULL values."""
    fills: dict[int, Any] = {}
    numeric = [k for k, p in enumerate(preps) if p.kind == "numeric"]
    if strategy == "mean" and numeric:
        query = rows.select(*(exp.Avg(this=to_double(col(preps[k].column))) for k in numeric))
        fills.update(zip(numeric, engine.query(query)[0], strict=True))
    elif strategy == "median":
        fills.update(
            zip(numeric, _median_fills(engine, rows, [preps[k].column for k in numeric]), strict=True)
        )
    for k, p in enumerate(preps):
        if k in fills:
            continue
        top = _frequencies(engine, rows, p.column, 1)
        fills[k] = top[0][0] if top else None
    out = []
    for k, p in enumerate(preps):
        value = fills[k]
        if value is None:
            raise DataError(f"column {p.column!r} has only NULL values: nothing to impute from")
        if p.kind == "numeric":
            value = float(value)
        elif p.kind == "boolean":
            value = bool(value)
        else:
            value = str(value)
        out.append(replace(p, fill=value))
    return out


def _classes(engine: Engine, rows: Rows, target: str) -> list:
    found = engine.query(rows.select(col(target)).distinct().order_by(col(target)).limit(MAX_CLASSES + 1))
    return [_plain(r[0]) for r in found]


def _plain(value: object) -> object:
    """A label as a JSON-friendly Python value."""
    if hasattr(value, "item"):
        value = value.item()  # numpy scalars
    if isinstance(value, bool | int | float | str):
        return value
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def load_file(engine: Engine, path: str, name: str, replace: bool = False, batch: int = 10_000) -> int:
    """Load a CSV/Parquet/JSON file into a new table ``name`` of any engine; returns the row count.

    The file is read by an in-memory DuckDB (its types inferred as for training: CSV text stays text),
    and written through the engine's driver in batches. An existing table of that name is an error
    unless ``replace`` is set, which drops it first.

    >>> from sqlgrad.engines.sqlite import SQLiteEngine
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.csv")
    >>> _ = open(path, "w").write("x,label\\n1.5,yes\\n-2,no\\n")
    >>> eng = SQLiteEngine()
    >>> load_file(eng, path, "points")
    2
    >>> eng.query('SELECT * FROM "points"')
    [(1.5, 'yes'), (-2.0, 'no')]
    """
    from .engines.duckdb import DuckDBEngine

    if not is_file_argument(path):
        raise UsageError(f"{path}: sqlgrad load reads .csv, .tsv, .parquet and .json files")
    if not os.path.exists(path):
        raise TableNotFoundError(f"file not found: {path}")
    if not name:
        raise UsageError("--table must name the table to create")
    parts = tuple(name.split(".")) if "." in name and all(name.split(".")) else (name,)
    if engine.table_exists(parts):
        if not replace:
            raise UsageError(f"table {name!r} already exists in {engine.url}; pass --replace to replace it")
        engine.execute(exp.Drop(tables=[table(list(parts))], kind="TABLE", exists=True))
    reader = engine if isinstance(engine, DuckDBEngine) else DuckDBEngine()
    try:
        return copy_relation(reader, DataSource(path=path), engine, parts, batch=batch)
    finally:
        if reader is not engine:
            reader.close()


def copy_relation(
    reader: Engine,
    src: DataSource,
    engine: Engine,
    parts: tuple[str, ...],
    temporary: bool = False,
    batch: int = 10_000,
) -> int:
    """Copy ``src``, read by the DuckDB engine ``reader``, into a new table ``parts`` of ``engine``;
    returns the row count. Column kinds are kept (integer, float, boolean); anything else becomes
    text. A half-written table is dropped. ``temporary``: a temporary table where the engine has them.
    """
    from .engines.duckdb import DuckDBEngine

    try:
        columns = reader.describe(src.relation())
    except EngineError as err:
        raise DataError(f"cannot read {src.label}: {err}") from err
    plain = ("integer", "float", "boolean", "text")
    kinds = [(c.name, c.kind if c.kind in plain else "text") for c in columns]
    select = exp.select(
        *(
            alias(exp.Cast(this=col(c), to=exp.DataType.build("VARCHAR")), c) if k == "text" else col(c)
            for c, k in kinds
        )
    ).from_(src.relation())
    temporary = temporary and engine.capabilities.temp_tables
    if isinstance(engine, DuckDBEngine) and engine.connection is reader.connection:
        props = exp.Properties(expressions=[exp.TemporaryProperty()]) if temporary else None
        engine.execute(exp.Create(this=table(list(parts)), kind="TABLE", expression=select, properties=props))
        return int(engine.scalar(exp.select(exp.Count(this=exp.Star())).from_(table(list(parts)))))
    cursor = reader.connection.execute(reader.render(select))

    def rows() -> Iterator[tuple]:
        while chunk := cursor.fetchmany(batch):
            yield from (tuple(_plain_value(v) for v in r) for r in chunk)

    try:
        return engine.create_table(list(parts), kinds, rows(), batch=batch, temporary=temporary)
    except BaseException:  # a half-loaded table is ours: remove it
        with contextlib.suppress(Exception):
            engine.execute(exp.Drop(tables=[table(list(parts))], kind="TABLE", exists=True))
        raise


def _plain_value(value: object) -> object:
    from decimal import Decimal

    return float(value) if isinstance(value, Decimal) else value
