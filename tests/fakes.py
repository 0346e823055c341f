"""Fake BigQuery and Trino DB-API connections for the adapters' tests, with no network.

Each fake stands where the official driver's connection would be (``google.cloud.bigquery.dbapi``'s
``Connection``, ``trino.dbapi.Connection``): it takes the SQL text the adapter sends, transpiles it from
the engine's dialect to DuckDB with sqlglot, and runs it on an in-memory DuckDB database. So a training
run "on BigQuery" or "on Trino" executes the very statements the adapter would send, and its weights can
be held against numpy. Each fake also enforces the few engine rules that the adapter is built around,
so that a regression in the adapter fails here:

- BigQuery: temporary tables exist only in a session (a job using one without the session's id fails);
  every job must carry the default dataset; ``dry_run`` jobs return a schema and run nothing; a
  multi-statement query (``DECLARE ...; WHILE ... END WHILE; ...``) returns its last statement's rows.
  The script interpreter understands exactly the procedural statements the ``scripted`` plan writes.
- Trino: no ``CREATE TEMPORARY TABLE`` and no ``DELETE`` (like the memory and Hive connectors);
  results count as complete only once fetched to the end (``unfetched`` counts the ones left).

What the fakes do not show: BigQuery's and Trino's own numerics, planners, quotas and limits.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import duckdb
import sqlglot

DUCK_TO_BIGQUERY = {
    "DOUBLE": "FLOAT",
    "FLOAT": "FLOAT",
    "BIGINT": "INTEGER",
    "INTEGER": "INTEGER",
    "HUGEINT": "INTEGER",
    "VARCHAR": "STRING",
    "BOOLEAN": "BOOLEAN",
    "DATE": "DATE",
    "TIMESTAMP": "DATETIME",
}


def _duck_type(type_code: Any) -> str:
    return str(type_code).upper()


class FakeError(Exception):
    """What the fake engines raise where the real ones would refuse a statement."""


class _DuckBacked:
    def __init__(self) -> None:
        self.duck = duckdb.connect()
        self.statements: list[str] = []
        self.closed = False
        self._transpiled: dict[tuple[str, str], list[str]] = {}

    def run(self, sql: str, read: str) -> tuple[list[tuple], list[tuple[str, str]] | None]:
        """Transpile ``sql`` (one or more statements) from ``read`` to DuckDB and run it; the last
        statement's rows and (name, DuckDB type) description."""
        rows: list[tuple] = []
        description: list[tuple[str, str]] | None = None
        key = (sql, read)
        if key not in self._transpiled:  # the stepwise plan sends the same statements every iteration
            self._transpiled[key] = sqlglot.transpile(sql, read=read, write="duckdb")
        for stmt in self._transpiled[key]:
            result = self.duck.execute(stmt)
            if result.description is None:
                rows, description = [], None
            else:
                description = [(d[0], _duck_type(d[1])) for d in result.description]
                rows = [tuple(r) for r in result.fetchall()]
        return rows, description


# --- BigQuery -----------------------------------------------------------------------------------------


@dataclass
class FakeSessionInfo:
    session_id: str


@dataclass
class FakeQueryJob:
    session_info: FakeSessionInfo | None


class FakeBigQueryConnection(_DuckBacked):
    """The surface of ``google.cloud.bigquery.dbapi.Connection`` that sqlgrad uses."""

    def __init__(self, project: str = "proj", dataset: str = "ds") -> None:
        super().__init__()
        self.default_dataset = f"{project}.{dataset}"
        self.sessions: set[str] = set()
        self.aborted: list[str] = []
        self.jobs: list[tuple[str, Any]] = []
        self._ids = itertools.count(1)

    def cursor(self) -> FakeBigQueryCursor:
        return FakeBigQueryCursor(self)

    def close(self) -> None:
        self.closed = True
        self.duck.close()

    def temp_tables(self) -> list[str]:
        return [
            r[0]
            for r in self.duck.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
        ]


class FakeBigQueryCursor:
    """``execute(operation, parameters=None, job_id=None, job_config=None)``, ``fetchall``,
    ``description`` (BigQuery type names), ``query_job``, ``close``."""

    def __init__(self, connection: FakeBigQueryConnection) -> None:
        self.connection = connection
        self.description: tuple | None = None
        self._rows: list[tuple] = []
        self.query_job: FakeQueryJob | None = None

    def execute(
        self, operation: str, parameters: Any = None, job_id: Any = None, job_config: Any = None
    ) -> None:
        con = self.connection
        if parameters:
            raise FakeError("sqlgrad sends no query parameters")
        if job_config is None or str(job_config.default_dataset) != con.default_dataset:
            raise FakeError(f"job without the default dataset {con.default_dataset}: {operation[:60]}")
        session = None
        for prop in job_config.connection_properties or []:
            if prop.key == "session_id":
                session = prop.value
        if session is not None and session not in con.sessions:
            raise FakeError(f"Session {session} not found or has ended")
        if job_config.create_session:
            session = f"fake-session-{next(con._ids)}"
            con.sessions.add(session)
        self.query_job = FakeQueryJob(FakeSessionInfo(session) if session else None)
        if session is None and re.search(r"\bTEMP(ORARY)?\b", operation, re.IGNORECASE):
            raise FakeError("Use of CREATE TEMPORARY TABLE requires a script or session")
        con.jobs.append((operation, job_config))
        if operation.strip().upper() == "CALL BQ.ABORT_SESSION()":
            con.sessions.discard(session)
            con.aborted.append(session)
            for name in con.temp_tables():
                con.duck.execute(f'DROP TABLE "{name}"')
            self._set([], None)
            return
        if job_config.dry_run:
            rows, description = con.run(f"SELECT * FROM ({operation}) LIMIT 0", "bigquery")
            self._set([], description)
            return
        if operation.lstrip().upper().startswith("DECLARE "):
            rows, description = _BigQueryScript(con, operation).run()
        else:
            rows, description = con.run(operation, "bigquery")
        con.statements.append(operation)
        self._set(rows, description)

    def _set(self, rows: list[tuple], description: list[tuple[str, str]] | None) -> None:
        self._rows = rows
        self.description = (
            None
            if description is None
            else tuple(
                (name, DUCK_TO_BIGQUERY.get(t.split("(")[0], "NUMERIC" if t.startswith("DECIMAL") else t))
                + (None,) * 5
                for name, t in description
            )
        )

    def fetchall(self) -> list[tuple]:
        rows, self._rows = self._rows, []
        return rows

    def close(self) -> None:
        self._rows = []


class _BigQueryScript:
    """Runs the multi-statement queries of the ``scripted`` plan: ``DECLARE v INT64 DEFAULT n;``,
    ``WHILE v < n DO`` ... ``END WHILE;``, ``SET v = v + 1;``, and SQL statements, one per line."""

    DECLARE = re.compile(r"DECLARE (\w+) INT64 DEFAULT (-?\d+);$")
    WHILE = re.compile(r"WHILE (\w+) < (\d+) DO$")
    SET = re.compile(r"SET (\w+) = (\w+) \+ 1;$")

    def __init__(self, con: FakeBigQueryConnection, script: str) -> None:
        self.con = con
        self.lines = [ln.strip() for ln in script.strip().splitlines() if ln.strip()]
        self.vars: dict[str, int] = {}
        self.result: tuple[list[tuple], Any] = ([], None)

    def run(self) -> tuple[list[tuple], Any]:
        end = self._block(0)
        if end != len(self.lines):
            raise FakeError(f"unexpected {self.lines[end]!r}")
        return self.result

    def _block(self, i: int) -> int:
        """Run lines from ``i`` until ``END WHILE;`` or the end; the index where it stopped."""
        while i < len(self.lines):
            line = self.lines[i]
            if line == "END WHILE;":
                return i
            if m := self.DECLARE.match(line):
                self.vars[m.group(1)] = int(m.group(2))
                i += 1
            elif m := self.WHILE.match(line):
                name, bound = m.group(1), int(m.group(2))
                end = self._skip(i + 1)
                while self.vars[name] < bound:
                    if self._block(i + 1) != end:
                        raise FakeError("unbalanced WHILE")
                i = end + 1
            elif m := self.SET.match(line):
                if m.group(1) != m.group(2):
                    raise FakeError(f"unsupported SET: {line}")
                self.vars[m.group(1)] += 1
                i += 1
            elif line.endswith(";"):
                self.result = self.con.run(line[:-1], "bigquery")
                i += 1
            else:
                raise FakeError(f"not a statement of the scripts sqlgrad writes: {line[:80]}")
        return i

    def _skip(self, i: int) -> int:
        depth = 0
        for j in range(i, len(self.lines)):
            if self.WHILE.match(self.lines[j]):
                depth += 1
            elif self.lines[j] == "END WHILE;":
                if depth == 0:
                    return j
                depth -= 1
        raise FakeError("WHILE without END WHILE")


# --- Trino --------------------------------------------------------------------------------------------


class FakeTrinoConnection(_DuckBacked):
    """The surface of ``trino.dbapi.Connection`` that sqlgrad uses."""

    def __init__(self) -> None:
        super().__init__()
        self.abandoned = 0
        """Statements whose results were not fetched to the end (their completion is not certain)."""

    def cursor(self) -> FakeTrinoCursor:
        return FakeTrinoCursor(self)

    def close(self) -> None:
        self.closed = True
        self.duck.close()

    def tables(self) -> list[str]:
        return [r[0] for r in self.duck.execute("SELECT table_name FROM duckdb_tables()").fetchall()]


class FakeTrinoCursor:
    """``execute(operation, params=None)``, ``fetchall``, ``description`` (Trino type names), ``close``."""

    def __init__(self, connection: FakeTrinoConnection) -> None:
        self.connection = connection
        self._rows: list[tuple] | None = None
        self._description: list[tuple] | None = None

    def execute(self, operation: str, params: Any = None) -> FakeTrinoCursor:
        con = self.connection
        if params:
            raise FakeError("sqlgrad sends no query parameters")
        self._abandon()
        head = operation.lstrip()[:40].upper()
        if head.startswith("CREATE TEMPORARY") or head.startswith("CREATE TEMP "):
            raise FakeError("line 1:8: mismatched input 'TEMPORARY'")
        if head.startswith("DELETE"):
            raise FakeError("This connector does not support modifying table rows")
        rows, description = con.run(operation, "trino")
        con.statements.append(operation)
        if description is None:  # DDL and DML report a row count, as Trino does
            rows, description = [(None,)], [("rows", "BIGINT")]
        self._rows = rows
        self._description = [(name, t.lower()) + (None,) * 5 for name, t in description]
        return self

    @property
    def description(self) -> list[tuple] | None:
        return self._description

    def fetchall(self) -> list[list]:
        if self._rows is None:
            return []
        rows, self._rows = self._rows, None
        return [list(r) for r in rows]

    def close(self) -> None:
        self._abandon()

    def _abandon(self) -> None:
        if self._rows is not None:
            self.connection.abandoned += 1
            self._rows = None
