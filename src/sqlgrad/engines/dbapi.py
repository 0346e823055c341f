"""Shared behaviour of engines reached through a PEP 249 (DB-API) driver."""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from .base import Column, Engine, as_query


class DBAPIEngine(Engine):
    """An engine over a DB-API connection in autocommit mode (transactions are explicit)."""

    _con: Any

    def _execute(self, sql: str) -> Any:
        cur = self._con.cursor()
        cur.execute(sql)
        return cur

    def _fetchall(self, result: Any) -> list[tuple]:
        rows = result.fetchall() if result.description is not None else []
        result.close()
        return [tuple(r) for r in rows]

    def _executemany(self, sql: str, rows: list[tuple]) -> None:
        cur = self._con.cursor()
        try:
            cur.executemany(sql, rows)
        finally:
            cur.close()

    def _type_name(self, type_code: Any) -> str:
        """The type name of a result column from the driver's description."""
        return str(type_code)

    def describe(self, relation: exp.Expression) -> list[Column]:
        query = as_query(relation)
        cur = self._run(query.limit(0))
        try:
            return [Column(d[0], self._type_name(d[1])) for d in cur.description]
        finally:
            cur.close()

    def close(self) -> None:
        """Close the connection, or give a connection the caller holds back as it came."""
        if getattr(self, "_owned", True):
            self._con.close()
            return
        saved, self._restore = getattr(self, "_restore", None), None
        if saved:
            self._give_back(saved)

    def _give_back(self, saved: dict[str, Any]) -> None:
        """Put back the connection state saved (as ``self._restore``) when a held connection was adopted."""
        return None
