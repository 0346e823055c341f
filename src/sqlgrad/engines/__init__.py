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
    known = "duckdb:// (in memory) or duckdb:///path/to/file.db"
    raise EngineError(f"unsupported database URL {url!r}; supported: {known}")
