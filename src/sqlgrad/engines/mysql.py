"""MariaDB and MySQL through PyMySQL: ``mysql://user[:password]@host:port/database``
(extra: ``sqlgrad[mysql]``).

Measured (``docs/engines.md``, MariaDB 10.11): an aggregate in a recursive term is refused (error 4008),
and the workaround with correlated scalar subqueries was 3.6x slower than one statement per iteration,
so training is stepwise. No ``TANH`` function: a stable formula is emitted. ``max_recursive_iterations``
silently stops recursion at 1,000 rows by default, which is why no recursive plan is used here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from ..errors import EngineError, MissingDriverError, UsageError
from .base import Capabilities
from .dbapi import DBAPIEngine

_FIELD_TYPES = {
    0: "DECIMAL",
    1: "TINYINT",
    2: "SMALLINT",
    3: "INTEGER",
    4: "FLOAT",
    5: "DOUBLE",
    7: "TIMESTAMP",
    8: "BIGINT",
    9: "MEDIUMINT",
    10: "DATE",
    11: "TIME",
    12: "DATETIME",
    13: "YEAR",
    15: "VARCHAR",
    16: "BIT",
    246: "DECIMAL",
    247: "ENUM",
    248: "SET",
    249: "BLOB",
    250: "BLOB",
    251: "BLOB",
    252: "TEXT",
    253: "VARCHAR",
    254: "CHAR",
}


_IN_TRANSACTION = 1
"""``SERVER_STATUS_IN_TRANS``: the server's flag for an open transaction on the connection."""


class MySQLEngine(DBAPIEngine):
    capabilities = Capabilities(
        dialect="mysql",
        recursive_cte=True,
        recursive_step=None,
        recursion_limit=1000,
        window_functions=True,
        max_select_columns=4096,
        max_table_columns=1000,
        temp_tables=True,
        overflow_errors=("value is out of range",),
        native_tanh=False,
        transactions=True,
        percentile_cont=False,
    )
    placeholder = "%s"

    def __init__(self, url: str, connection: Any | None = None) -> None:
        self.url = url
        if connection is not None:
            self._adopt(connection)
            return
        try:
            import pymysql
        except ImportError as err:
            raise MissingDriverError(
                "MariaDB/MySQL needs the PyMySQL driver: pip install 'sqlgrad[mysql]'"
            ) from err
        parts = urlsplit(url)
        database = parts.path.lstrip("/")
        if not database:
            raise EngineError(f"no database in {url!r}: write mysql://user@host:port/database")
        try:
            self._con = pymysql.connect(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 3306,
                user=unquote(parts.username or "root"),
                password=unquote(parts.password or ""),
                database=unquote(database),
                autocommit=True,
                connect_timeout=10,
                charset="utf8mb4",
            )
        except pymysql.Error as err:
            raise EngineError(
                f"cannot connect to MariaDB/MySQL at {parts.hostname}:{parts.port or 3306}: "
                f"{err.args[-1] if err.args else err}"
            ) from err
        self._owned = True
        self._session()

    def _session(self) -> None:
        # Derived-table merging re-inlines every staged column into its parent and the expressions grow
        # exponentially with depth (measured: 2.96 s against 0.28 s for 5 steps of a 3-4-2 tanh network).
        self.execute("SET SESSION optimizer_switch = 'derived_merge=off'")

    def _adopt(self, connection: Any) -> None:
        """Use a PyMySQL connection the caller holds: in autocommit mode and with this engine's session
        settings while sqlgrad uses it; :meth:`close` gives both back as they were."""
        if connection.server_status & _IN_TRANSACTION:
            raise UsageError(
                "the MariaDB/MySQL connection is inside a transaction: commit or roll back first"
            )
        self._con, self._owned = connection, False
        autocommit = connection.get_autocommit()
        connection.autocommit(True)
        switch = self.scalar("SELECT @@SESSION.optimizer_switch")
        self._restore = {"autocommit": autocommit, "optimizer_switch": switch}
        self._session()

    def drop_work_table(self, name: str) -> None:
        """``DROP TEMPORARY TABLE``: MariaDB's way to drop only a temporary table."""
        from sqlglot import exp

        from ..sqlexpr import table

        self.execute(exp.Drop(tables=[table(name)], kind="TABLE", exists=True, temporary=True))

    def _give_back(self, saved: dict[str, Any]) -> None:
        if self._con.open:
            with self._con.cursor() as cur:
                cur.execute("SET SESSION optimizer_switch = %s", (saved["optimizer_switch"],))
            self._con.autocommit(saved["autocommit"])

    def _type_name(self, type_code: Any) -> str:
        return _FIELD_TYPES.get(type_code, str(type_code))
