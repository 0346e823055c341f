"""Engines by URL scheme. Drivers are imported lazily, so a missing optional driver costs nothing until
its URL is used.

>>> eng = connect("duckdb://")
>>> eng.capabilities.dialect
'duckdb'
>>> eng.query("SELECT 1 + 1")
[(2,)]
>>> eng.close()

A connection the caller already holds is used as it is (and left open by sqlgrad):

>>> import duckdb
>>> con = duckdb.connect()
>>> _ = con.execute("CREATE TABLE t AS SELECT 42 AS answer")
>>> connect(con).query('SELECT "answer" FROM "t"')
[(42,)]
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..errors import EngineError
from .base import Capabilities, Column, Engine

__all__ = ["Capabilities", "Column", "Engine", "capabilities_for", "connect"]


def connect(url: str | Engine | Any | None = None) -> Engine:
    """Open an engine from a URL; ``None`` is an in-memory DuckDB database.

    Instead of a URL: an :class:`Engine` (returned as is), or a connection you hold: DuckDB, ``sqlite3``,
    psycopg 3, PyMySQL, or a SparkSession. sqlgrad uses it without closing it; a DB-API connection must
    not be inside a transaction, runs in autocommit mode while sqlgrad uses it, and gets its autocommit
    mode and the session settings sqlgrad changes (PostgreSQL ``jit``, MariaDB ``optimizer_switch``)
    back when the engine is closed (``train`` and the other calls close the engines they open).

    >>> import sqlite3
    >>> con = sqlite3.connect(":memory:")
    >>> eng = connect(con)
    >>> eng.query("SELECT 1"), con.isolation_level
    ([(1,)], None)
    >>> eng.close()
    >>> con.isolation_level
    ''
    """
    if isinstance(url, Engine):
        return url
    if url is not None and not isinstance(url, str):
        return _wrap(url)
    url = url or "duckdb://"
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in SCHEMES:
        return engine_class(SCHEMES[scheme])(url)
    known = (
        "duckdb:// (in memory), duckdb:///file.db, sqlite:///file.db, postgresql://user@host:port/db, "
        "mysql://user@host:port/db, spark://local[2], sc://host:port, bigquery://project/dataset, "
        "trino://user@host:port/catalog/schema"
    )
    raise EngineError(f"unsupported database URL {url!r}; supported: {known}")


SCHEMES = {
    "duckdb": "duckdb",
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
    "spark": "spark",
    "sc": "spark",
    "mysql": "mysql",
    "mariadb": "mysql",
    "bigquery": "bigquery",
    "trino": "trino",
}
"""URL scheme -> the dialect of the engine it opens (:data:`ENGINE_CLASSES`)."""

ENGINE_CLASSES = {
    "duckdb": ("duckdb", "DuckDBEngine"),
    "sqlite": ("sqlite", "SQLiteEngine"),
    "postgres": ("postgres", "PostgresEngine"),
    "mysql": ("mysql", "MySQLEngine"),
    "spark": ("spark", "SparkEngine"),
    "bigquery": ("bigquery", "BigQueryEngine"),
    "trino": ("trino", "TrinoEngine"),
}
"""sqlglot dialect -> (module, class) of the engine that speaks it."""


def capabilities_for(dialect: str) -> Capabilities:
    """The declared capabilities of the engine for a sqlglot dialect (no connection, no driver), or
    generic ones for a dialect that no engine of sqlgrad speaks.

    >>> capabilities_for("postgres").recursive_step, capabilities_for("spark").mutable_tables
    ('lateral', False)
    >>> capabilities_for("snowflake").dialect
    'snowflake'
    """
    if dialect not in ENGINE_CLASSES:
        return Capabilities(dialect=dialect)
    return engine_class(dialect).capabilities


def engine_class(dialect: str) -> type[Engine]:
    """The engine class for a dialect of :data:`ENGINE_CLASSES`, imported on first use (its driver is
    imported only when an engine is opened)."""
    import importlib

    module, name = ENGINE_CLASSES[dialect]
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def _wrap(connection: Any) -> Engine:
    """An engine over a connection object the caller holds (never closed by sqlgrad)."""
    module = type(connection).__module__
    if module.split(".")[0] in ("duckdb", "_duckdb"):
        from .duckdb import DuckDBEngine

        return DuckDBEngine("duckdb://", connection=connection)
    if module.startswith("pyspark") and hasattr(connection, "sql"):
        from .spark import SparkEngine

        return SparkEngine("spark://", session=connection)
    if isinstance(connection, sqlite3.Connection):
        from .sqlite import SQLiteEngine

        return SQLiteEngine("sqlite://", connection=connection)
    if module.split(".")[0] == "psycopg" and hasattr(connection, "info"):
        from .postgres import PostgresEngine

        info = connection.info
        return PostgresEngine(f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}", connection)
    if module.split(".")[0] == "pymysql" and hasattr(connection, "server_status"):
        from .mysql import MySQLEngine

        user, name = (v.decode() if isinstance(v, bytes) else v for v in (connection.user, connection.db))
        return MySQLEngine(f"mysql://{user}@{connection.host}:{connection.port}/{name}", connection)
    raise EngineError(
        f"cannot use a {type(connection).__name__} as a database: pass a URL (duckdb://, sqlite:///file.db, "
        "postgresql://..., ...), an Engine, or a connection: DuckDB, sqlite3, psycopg (3), PyMySQL or a "
        "SparkSession"
    )
