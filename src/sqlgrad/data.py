"""Data sources and preparation in SQL.

A source is a table or view of the engine (optionally schema-qualified) or, on engines that read files,
a CSV/Parquet/JSON path. Preparation validates the columns, picks the task, finds the classes, refuses
NULLs, and writes the training rows into a temporary table of the run: ``x_0 .. x_{n-1}`` as DOUBLE and
``y`` as the class index (softmax), 0/1 (sigmoid) or the DOUBLE target (regression). The user's relation
is only ever read.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlglot import exp

from .engines.base import Column, Engine
from .errors import ColumnNotFoundError, DataError, EngineError, TableNotFoundError, UsageError
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


@dataclass(frozen=True)
class DataSource:
    """A relation to read: ``parts`` of a table name, or a file ``path``."""

    parts: tuple[str, ...] = ()
    path: str | None = None

    @property
    def label(self) -> str:
        return self.path if self.path is not None else ".".join(self.parts)

    def relation(self) -> exp.Expression:
        """A FROM-able sqlglot expression (a quoted table, or a file-reading table function)."""
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

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.head == "softmax" and self.classes else 1


def choose_features(
    columns: list[Column], target: str, features: Sequence[str] | None
) -> tuple[list[str], list[str]]:
    """The feature columns (given, or every numeric/boolean column but the target) and notes."""
    by_name = {c.name: c for c in columns}
    notes: list[str] = []
    if features:
        missing = [f for f in features if f not in by_name]
        if missing:
            raise ColumnNotFoundError(f"feature column {missing[0]!r} is not in the data")
        if target in features:
            raise UsageError(f"the target {target!r} cannot also be a feature")
        if len(set(features)) != len(features):
            raise UsageError("a feature column is listed twice")
        for f in features:
            kind = by_name[f].kind
            if kind not in ("integer", "float", "boolean"):
                raise DataError(
                    f"feature column {f!r} is {by_name[f].type}: only numeric and boolean features can be "
                    "used (one-hot encoding of text columns is not implemented yet)"
                )
        return list(features), notes
    chosen, skipped = [], []
    for c in columns:
        if c.name == target:
            continue
        (chosen if c.kind in ("integer", "float", "boolean") else skipped).append(c.name)
    if skipped:
        notes.append(f"skipped non-numeric columns: {', '.join(skipped)} (use --features to choose)")
    if not chosen:
        raise DataError("no numeric feature columns besides the target")
    return chosen, notes


def _infer_task(engine: Engine, src: DataSource, target: Column) -> str:
    kind = target.kind
    if kind in ("text", "boolean"):
        return "classification"
    if kind == "float":
        return "regression"
    if kind == "integer":
        distinct = engine.scalar(
            exp.select(exp.Count(this=exp.Distinct(expressions=[col(target.name)]))).from_(src.relation())
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
) -> PreparedData:
    """Validate the data and write the training rows into the temporary table ``table_name``."""
    columns = engine.describe(src.relation())
    by_name = {c.name: c for c in columns}
    if target not in by_name:
        raise ColumnNotFoundError(f"target column {target!r} is not in {src.label}")
    feats, notes = choose_features(columns, target, features)
    if task == "auto":
        task = _infer_task(engine, src, by_name[target])
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

    _check_counts(engine, src, [*feats, target], [f for f in feats if by_name[f].kind == "float"])
    if task == "classification":
        found = _classes(engine, src, target)
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

    engine.execute(
        create_temp_table(table_name, prepare_select(src.relation(), feats, target, task, head, classes))
    )
    n_rows = engine.scalar(exp.select(exp.Count(this=exp.Star())).from_(table(table_name)))
    return PreparedData(src, table_name, feats, target, task, head, classes, int(n_rows), notes)


def prepare_select(
    relation: exp.Expression, features: Sequence[str], target: str, task: str, head: str, classes: list | None
) -> exp.Select:
    """``SELECT CAST(f AS DOUBLE) AS x_0, ..., <label index or DOUBLE target> AS y FROM relation``."""
    select = exp.select(*(alias(to_double(col(f)), f"x_{i}") for i, f in enumerate(features)))
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


def _check_counts(engine: Engine, src: DataSource, columns: list[str], floats: list[str]) -> None:
    """Refuse an empty relation, NULLs in ``columns`` and NaN or infinite values in ``floats``."""

    def count(cond: exp.Expression, name: str) -> exp.Expression:
        return alias(exp.Sum(this=case([(cond, num(1))], num(0))), name)

    counts = [alias(exp.Count(this=exp.Star()), "n")]
    counts += [count(exp.Is(this=col(c), expression=exp.Null()), f"null_{i}") for i, c in enumerate(columns)]
    # |x| > the largest double: true for infinities, and for NaN on engines that order NaN above every
    # number (DuckDB, PostgreSQL, Spark); SQLite and MariaDB cannot store either.
    counts += [
        count(exp.GT(this=exp.Abs(this=col(c)), expression=num(sys.float_info.max)), f"nonfinite_{i}")
        for i, c in enumerate(floats)
    ]
    row = engine.query(exp.select(*counts).from_(src.relation()))[0]
    if row[0] == 0:
        raise DataError(f"{src.label} has no rows")
    for c, nulls in zip(columns, row[1 : 1 + len(columns)], strict=True):
        if nulls:
            raise DataError(f"column {c!r} has {int(nulls)} NULL values; remove or fill them before training")
    for c, bad in zip(floats, row[1 + len(columns) :], strict=False):
        if bad:
            raise DataError(f"column {c!r} has {int(bad)} NaN or infinite values")


def _classes(engine: Engine, src: DataSource, target: str) -> list:
    rows = engine.query(
        exp.select(col(target)).distinct().from_(src.relation()).order_by(col(target)).limit(MAX_CLASSES + 1)
    )
    return [_plain(r[0]) for r in rows]


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
    reader = DuckDBEngine()
    try:
        src = DataSource(path=path)
        try:
            columns = reader.describe(src.relation())
        except EngineError as err:
            raise DataError(f"cannot read {path}: {err}") from err
        kinds = [
            (c.name, c.kind if c.kind in ("integer", "float", "boolean", "text") else "text") for c in columns
        ]
        select = exp.select(
            *(
                alias(exp.Cast(this=col(c), to=exp.DataType.build("VARCHAR")), c) if k == "text" else col(c)
                for c, k in kinds
            )
        ).from_(src.relation())
        if isinstance(engine, DuckDBEngine):
            engine.execute(exp.Create(this=table(list(parts)), kind="TABLE", expression=select))
            return int(engine.scalar(exp.select(exp.Count(this=exp.Star())).from_(table(list(parts)))))
        cursor = reader.connection.execute(reader.render(select))

        def rows():
            while chunk := cursor.fetchmany(batch):
                yield from (tuple(_plain_value(v) for v in r) for r in chunk)

        try:
            return engine.create_table(list(parts), kinds, rows(), batch=batch)
        except BaseException:  # a half-loaded table is ours: remove it
            with contextlib.suppress(Exception):
                engine.execute(exp.Drop(tables=[table(list(parts))], kind="TABLE", exists=True))
            raise
    finally:
        reader.close()


def _plain_value(value: object) -> object:
    from decimal import Decimal

    return float(value) if isinstance(value, Decimal) else value
