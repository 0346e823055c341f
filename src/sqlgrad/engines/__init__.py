"""Engines by URL scheme. Drivers are imported lazily, so a missing optional driver costs nothing until
its URL is used.

>>> eng = connect("duckdb://")
>>> eng.capabilities.dialect
'duckdb'
>>> eng.query("SELECT 1 + 1")
[(2,)]
>>> eng.close()
"""

from __future__ import annotations

from ..errors import EngineError
from .base import Capabilities, Column, Engine

__all__ = ["Capabilities", "Column", "Engine", "connect"]


def connect(url: str | None = None) -> Engine:
    """Open an engine from a URL; ``None`` is an in-memory DuckDB database."""
    url = url or "duckdb://"
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "duckdb":
        from .duckdb import DuckDBEngine

        return DuckDBEngine(url)
    if scheme == "sqlite":
        from .sqlite import SQLiteEngine

        return SQLiteEngine(url)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresEngine

        return PostgresEngine(url)
    if scheme in ("spark", "sc"):
        from .spark import SparkEngine

        return SparkEngine(url)
    if scheme in ("mysql", "mariadb"):
        from .mysql import MySQLEngine

        return MySQLEngine(url)
    if scheme == "bigquery":
        from .bigquery import BigQueryEngine

        return BigQueryEngine(url)
    if scheme == "trino":
        from .trino import TrinoEngine

        return TrinoEngine(url)
    known = (
        "duckdb:// (in memory), duckdb:///file.db, sqlite:///file.db, postgresql://user@host:port/db, "
        "mysql://user@host:port/db, spark://local[2], sc://host:port, bigquery://project/dataset, "
        "trino://user@host:port/catalog/schema"
    )
    raise EngineError(f"unsupported database URL {url!r}; supported: {known}")
