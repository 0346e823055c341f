"""Models saved in the database: the table ``sqlgrad_models`` (name, created_at, model).

``sqlgrad train ... --save-to-db NAME`` stores the model's JSON under NAME in the ``--db`` database;
every command that takes ``MODEL.json`` also takes ``db:NAME``, read from that table. The table is
created on first use; saving under an existing name is an error unless ``replace`` is given. Every
statement is a sqlglot tree; the name and the JSON are string literals escaped by sqlglot for the dialect.

>>> import numpy as np
>>> from sqlgrad.engines import connect
>>> eng = connect("duckdb://")
>>> m = Model(features=["x"], target="y", task="regression", head="identity", activations=[],
...           weights=[(np.array([[2.0]]), np.array([0.5]))])
>>> save_model(eng, "line", m)
>>> load_model(eng, "line").weights[0][0].tolist()
[[2.0]]
>>> [name for name, _ in list_models(eng)]
['line']
>>> save_model(eng, "line", m)
Traceback (most recent call last):
...
sqlgrad.errors.UsageError: model 'line' is already in sqlgrad_models; pass --replace to replace it
>>> eng.close()
"""

from __future__ import annotations

import json
from typing import Any

from sqlglot import exp

from .engines import Engine, connect
from .errors import ModelFileError, SpecError, TableNotFoundError, UsageError
from .model import Model
from .sqlexpr import col, eq, ident, table

TABLE = "sqlgrad_models"
"""The table that holds saved models."""

PREFIX = "db:"
"""How a command's MODEL argument names a saved model: ``db:NAME``."""

MAX_NAME = 255


def _name_literal(name: str) -> exp.Expression:
    if not name or len(name) > MAX_NAME:
        raise UsageError(f"a saved model's name has 1 to {MAX_NAME} characters, got {name!r}")
    return exp.Literal.string(name)


def create_statement() -> exp.Create:
    """``CREATE TABLE sqlgrad_models (name VARCHAR(255) PRIMARY KEY, created_at TIMESTAMP, model TEXT)``
    (the model's type is LONGTEXT on MariaDB/MySQL, whose TEXT holds 64 KB)."""
    columns = [
        exp.ColumnDef(
            this=ident("name"),
            kind=exp.DataType.build(f"VARCHAR({MAX_NAME})"),
            constraints=[exp.ColumnConstraint(kind=exp.PrimaryKeyColumnConstraint())],
        ),
        exp.ColumnDef(this=ident("created_at"), kind=exp.DataType.build("TIMESTAMP")),
        exp.ColumnDef(
            this=ident("model"),
            kind=exp.DataType.build("LONGTEXT"),
            constraints=[exp.ColumnConstraint(kind=exp.NotNullColumnConstraint())],
        ),
    ]
    return exp.Create(this=exp.Schema(this=table(TABLE), expressions=columns), kind="TABLE")


def model_json(model: Model) -> str:
    """The model as the JSON text of its file (refusing NaN or infinite weights)."""
    import numpy as np

    for w, b in model.weights:
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise SpecError("the model has NaN or infinite weights; it was not saved")
    return json.dumps(model.to_dict(), allow_nan=False)


def save_model(engine: Engine, name: str, model: Model, replace: bool = False) -> None:
    """Store ``model`` under ``name`` in ``sqlgrad_models`` (created if missing), in one transaction.

    An existing name is an error unless ``replace`` is true."""
    literal = _name_literal(name)
    text = model_json(model)
    if not engine.table_exists([TABLE]):
        engine.execute(create_statement())
    where = eq(col("name"), literal.copy())
    with engine.transaction():
        exists = engine.scalar(exp.select(exp.Count(this=exp.Star())).from_(table(TABLE)).where(where))
        if exists and not replace:
            raise UsageError(f"model {name!r} is already in {TABLE}; pass --replace to replace it")
        if exists:
            engine.execute(exp.delete(table(TABLE), where=where.copy()))
        values = exp.Values(
            expressions=[
                exp.Tuple(expressions=[literal.copy(), exp.CurrentTimestamp(), exp.Literal.string(text)])
            ]
        )
        target = exp.Schema(
            this=table(TABLE), expressions=[ident(c) for c in ("name", "created_at", "model")]
        )
        engine.execute(exp.Insert(this=target, expression=values))


def load_model(engine: Engine, name: str) -> Model:
    """The model saved under ``name`` (a :class:`~sqlgrad.errors.ModelFileError` if there is none)."""
    literal = _name_literal(name)
    if not engine.table_exists([TABLE]):
        raise TableNotFoundError(f"no saved models in {_where(engine)}: it has no table {TABLE}")
    rows = engine.query(exp.select(col("model")).from_(table(TABLE)).where(eq(col("name"), literal)))
    if not rows:
        raise ModelFileError(f"no model named {name!r} in {TABLE} of {_where(engine)}")
    origin = f"{PREFIX}{name}"
    try:
        data = json.loads(rows[0][0])
    except (TypeError, json.JSONDecodeError) as err:
        raise ModelFileError(f"{origin} is not a readable JSON model: {err}") from err
    return Model.from_dict(data, origin=origin)


def list_models(engine: Engine) -> list[tuple[str, Any]]:
    """``(name, created_at)`` of every saved model, by name (empty when the table does not exist)."""
    if not engine.table_exists([TABLE]):
        return []
    rows = engine.query(exp.select(col("name"), col("created_at")).from_(table(TABLE)).order_by(col("name")))
    return [(str(n), c) for n, c in rows]


def _where(engine: Engine) -> str:
    url = engine.url
    if "@" in url:  # no credentials in messages
        scheme, rest = url.split("://", 1)
        cred, host = rest.rsplit("@", 1)
        url = f"{scheme}://{cred.split(':', 1)[0]}@{host}"
    return url


def is_reference(ref: str) -> bool:
    """Whether a MODEL argument names a saved model (``db:NAME``)."""
    return ref.startswith(PREFIX)


def resolve_model(ref: str, db: str | Engine | None = None) -> Model:
    """The model a command's MODEL argument names: ``db:NAME`` from ``db``'s ``sqlgrad_models``, else a
    JSON file."""
    if not is_reference(ref):
        return Model.load(ref)
    name = ref[len(PREFIX) :]
    if isinstance(db, Engine):
        return load_model(db, name)
    if db is None:
        raise UsageError(f"{ref}: a saved model is read from --db; give --db URL")
    engine = connect(db)
    try:
        return load_model(engine, name)
    finally:
        engine.close()
