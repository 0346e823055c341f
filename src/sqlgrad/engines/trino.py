"""Trino through the official ``trino`` package's DB-API: ``trino://USER[:PASSWORD]@HOST:PORT/CATALOG/SCHEMA``
(extra ``sqlgrad[trino]``).

URL options: ``?http_scheme=https`` (the default when a password is given; a password goes as HTTP
basic authentication, which Trino accepts over HTTPS only), ``?verify=false`` (do not check the TLS
certificate), ``?source=NAME``. The port defaults to 8080 (443 with https).

Trino has no temporary tables: a run's tables (prepared data, parameter rows) are plain tables of
``CATALOG.SCHEMA`` named ``sqlgrad_<12 hex digits>_...``, dropped when the run ends, so the user needs
CREATE TABLE and DROP TABLE there (a ``memory`` catalog is enough). Whether a table takes DELETE depends
on the connector (Iceberg and Delta Lake do, Hive and memory tables in general not), so the stepwise plan
appends one parameter row per iteration instead (``mutable_tables=False``).

Cited from Trino's documentation, not measured (no cluster was reachable from where this was written):
``WITH RECURSIVE`` is experimental, its recursion depth is fixed (session property
``max_recursion_depth``, default 10) whatever the data, the plan grows quadratically with that depth, the
recursive reference may appear once, in the FROM clause of the step, and "usage of outer joins, set
operations, limit clause, and others is not always allowed in the step": no form of an iteration with an
aggregate is documented to work, so ``recursive_step`` is None and ``auto`` picks ``stepwise``. Trino's
SQL routines cannot run INSERT, so there is no ``scripted`` plan either.

The client's ``execute`` returns once the first rows arrive; a statement's completion (and its error)
is only certain after every row is fetched, so each statement is fetched to the end here, DDL included.
An existing DB-API connection (``trino.dbapi.connect(...)``) can be passed instead of a URL; the tests
pass a fake one that runs the SQL on DuckDB (``tests/fakes.py``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from sqlglot import exp

from ..errors import EngineError, MissingDriverError
from .base import Capabilities
from .dbapi import DBAPIEngine
from .warehouse import create_table_with_values, url_options


class TrinoEngine(DBAPIEngine):
    """Trino, in the catalog and schema of the URL."""

    capabilities = Capabilities(
        dialect="trino",
        recursive_cte=True,
        recursive_step=None,
        recursion_limit=10,
        window_functions=True,
        temp_tables=False,
        native_tanh=True,
        transactions=False,
        percentile_cont=False,
        mutable_tables=False,
        reads_files=False,
    )

    def __init__(self, url: str, connection: Any | None = None) -> None:
        self.url = url
        if connection is not None:
            self._con, self._owned = connection, False
            return
        params = parse_url(url)
        try:
            import trino
        except ImportError as err:
            raise MissingDriverError("Trino needs the trino client: pip install 'sqlgrad[trino]'") from err
        password = params.pop("password", None)
        if password is not None:
            params["auth"] = trino.auth.BasicAuthentication(params["user"], password)
        try:
            self._con = trino.dbapi.connect(**params)
        except Exception as err:
            raise EngineError(f"cannot connect to Trino at {_safe(url)}: {_first(err)}") from err
        self._owned = True

    def render(self, statement: exp.Expression, pretty: bool = False) -> str:
        # No temporary tables: a run's table is a plain table of the schema, dropped at the end.
        if isinstance(statement, exp.Create) and statement.find(exp.TemporaryProperty) is not None:
            statement = statement.copy()
            for prop in list(statement.find_all(exp.TemporaryProperty)):
                prop.pop()
            props = statement.args.get("properties")
            if props is not None and not props.expressions:
                statement.set("properties", None)
        return super().render(statement, pretty)

    def _execute(self, sql: str) -> Any:
        cur = self._con.cursor()
        try:
            cur.execute(sql)
            rows = cur.fetchall()  # drives the query to completion (DDL and DML too)
            description = cur.description
        finally:
            cur.close()
        return _Fetched(rows, description)

    def _type_name(self, type_code: Any) -> str:
        # Trino reports e.g. "double", "bigint", "varchar(5)", "decimal(10,2)", "timestamp(3)"
        return str(type_code).upper()

    def create_table(self, name: Any, columns: Any, rows: Any, batch: int = 10_000) -> int:
        """A table of the URL's schema, rows sent as ``INSERT ... VALUES`` statements (the DB-API's
        ``executemany`` runs one query per row)."""
        return create_table_with_values(self, name, columns, rows)


class _Fetched:
    """A statement's rows and description, already fetched (the cursor is closed)."""

    def __init__(self, rows: list, description: Any) -> None:
        self.rows, self.description = rows, description

    def fetchall(self) -> list:
        return self.rows

    def close(self) -> None:
        return None


def parse_url(url: str) -> dict[str, Any]:
    """Keyword arguments of ``trino.dbapi.connect`` from ``trino://user[:password]@host[:port]/catalog/schema``.

    >>> params = parse_url("trino://ana@trino.example.com:8443/hive/sales?http_scheme=https")
    >>> [params[k] for k in ("host", "port", "user", "catalog", "schema", "http_scheme")]
    ['trino.example.com', 8443, 'ana', 'hive', 'sales', 'https']
    """
    if not url.lower().startswith("trino://"):
        raise EngineError(f"not a Trino URL: {url!r} (expected trino://USER@HOST:PORT/CATALOG/SCHEMA)")
    rest, _, query = url.split("://", 1)[1].partition("?")
    options = url_options(query)
    if "@" not in rest:
        raise EngineError(
            f"bad Trino URL {_safe(url)}: a user is required (trino://USER@HOST:PORT/CATALOG/SCHEMA)"
        )
    cred, _, location = rest.rpartition("@")
    user, has_password, password = cred.partition(":")
    hostport, *path = location.split("/")
    path = [p for p in path if p]
    if len(path) != 2 or not hostport or not user:
        raise EngineError(f"bad Trino URL {_safe(url)}: write trino://USER@HOST:PORT/CATALOG/SCHEMA")
    host, has_port, port = hostport.partition(":")
    scheme = options.pop("http_scheme", "https" if has_password else "http").lower()
    params: dict[str, Any] = {
        "host": host,
        "user": unquote(user),
        "catalog": unquote(path[0]),
        "schema": unquote(path[1]),
        "http_scheme": scheme,
    }
    try:
        params["port"] = int(port) if has_port else (443 if scheme == "https" else 8080)
    except ValueError:
        raise EngineError(f"bad port in Trino URL {_safe(url)}") from None
    if has_password:
        params["password"] = unquote(password)
    if "verify" in options:
        params["verify"] = options.pop("verify").lower() not in ("false", "0", "no")
    if "source" in options:
        params["source"] = options.pop("source")
    if options:
        raise EngineError(
            f"unknown Trino URL option(s) {', '.join(sorted(options))}; known: http_scheme, verify, source"
        )
    return params


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
