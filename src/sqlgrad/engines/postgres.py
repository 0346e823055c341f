"""PostgreSQL through psycopg 3: ``postgresql://user@host:port/database`` (extra: ``sqlgrad[postgres]``).

Measured (``docs/engines.md``, PostgreSQL 15): an aggregate directly in a recursive term is refused
(``aggregate functions are not allowed in a recursive query's recursive term``) and the recursive
reference may not sit inside a subquery, but a LATERAL subquery holding the aggregate works and was
the fastest single statement; a select list holds at most 1,664 entries, a table 1,600 columns.
"""

from __future__ import annotations

from typing import Any

from ..errors import EngineError, MissingDriverError, UsageError
from .base import Capabilities
from .dbapi import DBAPIEngine


class PostgresEngine(DBAPIEngine):
    capabilities = Capabilities(
        dialect="postgres",
        recursive_cte=True,
        recursive_step="lateral",
        window_functions=True,
        max_select_columns=1664,
        max_table_columns=1600,
        temp_tables=True,
        overflow_errors=("value out of range: overflow", "value out of range: underflow"),
        temp_schema="pg_temp",
        native_tanh=True,
        transactions=True,
        percentile_cont=True,
        fence_subqueries=True,
        analyze_tables=True,
        scripting="plpgsql",
    )
    placeholder = "%s"

    def __init__(self, url: str, connection: Any | None = None) -> None:
        self.url = url
        if connection is not None:
            self._adopt(connection)
            return
        try:
            import psycopg
        except ImportError as err:
            raise MissingDriverError(
                "PostgreSQL needs the psycopg driver: pip install 'sqlgrad[postgres]'"
            ) from err
        conninfo = "postgresql://" + url.split("://", 1)[1]
        try:
            self._con = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
        except psycopg.Error as err:
            raise EngineError(f"cannot connect to PostgreSQL at {_safe(url)}: {_first(err)}") from err
        self._owned = True
        self._session()

    def _session(self) -> None:
        # JIT compilation of the wide per-row expressions costs more than it saves: measured on the
        # article's network (10k rows), one statement per iteration took 838 ms with JIT, 31 ms without.
        self.execute("SET jit = off")

    def _adopt(self, connection: Any) -> None:
        """Use a psycopg connection the caller holds: in autocommit mode and with this engine's session
        settings while sqlgrad uses it; :meth:`close` gives both back as they were."""
        import psycopg

        if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            raise UsageError("the PostgreSQL connection is inside a transaction: commit or roll back first")
        self._con, self._owned = connection, False
        autocommit = connection.autocommit
        connection.autocommit = True
        self._restore = {"autocommit": autocommit, "jit": self.scalar("SELECT current_setting('jit')")}
        self._session()

    def _give_back(self, saved: dict[str, Any]) -> None:
        if not self._con.closed:
            with self._con.cursor() as cur:
                cur.execute("SELECT set_config('jit', %s, false)", (saved["jit"],))
            self._con.autocommit = saved["autocommit"]

    def _type_name(self, type_code: Any) -> str:
        info = self._con.adapters.types.get(type_code)
        name = info.name if info is not None else str(type_code)
        return {
            "float8": "DOUBLE",
            "float4": "REAL",
            "int8": "BIGINT",
            "int4": "INTEGER",
            "int2": "SMALLINT",
            "bool": "BOOLEAN",
            "varchar": "VARCHAR",
            "bpchar": "CHAR",
            "timestamptz": "TIMESTAMPTZ",
        }.get(name, name.upper())


def _safe(url: str) -> str:
    """The URL without a password."""
    scheme, rest = url.split("://", 1)
    if "@" in rest:
        cred, host = rest.rsplit("@", 1)
        rest = cred.split(":", 1)[0] + "@" + host
    return f"{scheme}://{rest}"


def _first(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[0] if lines else type(err).__name__
