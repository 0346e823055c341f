"""Google BigQuery through the official client's DB-API: ``bigquery://PROJECT/DATASET`` (extra
``sqlgrad[bigquery]``, ``google-cloud-bigquery``).

``DATASET`` is the default dataset: unqualified table names resolve there and ``sqlgrad load`` writes
there. URL options: ``?location=EU`` (where jobs and the session run), ``?maximum_bytes_billed=N`` (every
job fails rather than bill more than N bytes). Credentials are Google's Application Default Credentials
(``gcloud auth application-default login``, or ``GOOGLE_APPLICATION_CREDENTIALS=key.json``).

Every statement runs in one BigQuery *session* opened with the engine (``create_session`` on the first
job, then the session id as a connection property of each job), because BigQuery has temporary tables
only in sessions and multi-statement queries; the session, and every temporary table of the run with
it, is ended by :meth:`BigQueryEngine.close` (``CALL BQ.ABORT_SESSION()``). Column types are read with
dry runs, which BigQuery does not bill (``SELECT * ... LIMIT 0`` would be billed as a full scan).

Cited from BigQuery's documentation, not measured (no project was reachable from where this was
written): a recursive CTE stops after 500 iterations, and a subquery holding the recursive reference may
not call an aggregate function, so no recursive form of an iteration is accepted (``auto`` picks
``stepwise``); tables, results and views have at most 10,000 columns; scripting (``DECLARE``, ``WHILE``,
``LOOP``) runs the ``scripted`` plan as one multi-statement job.

An existing DB-API connection (``google.cloud.bigquery.dbapi.connect(client)``) can be passed instead
of a URL's project; the tests pass a fake one that runs the SQL on DuckDB (``tests/fakes.py``).
"""

from __future__ import annotations

from typing import Any

from ..errors import EngineError, MissingDriverError
from .base import Capabilities, Column, as_query
from .dbapi import DBAPIEngine
from .warehouse import create_table_with_values, url_options

TYPE_NAMES = {
    "FLOAT": "DOUBLE",
    "FLOAT64": "DOUBLE",
    "INTEGER": "BIGINT",
    "INT64": "BIGINT",
    "BOOL": "BOOLEAN",
    "BOOLEAN": "BOOLEAN",
    "STRING": "VARCHAR",
    "NUMERIC": "DECIMAL",
    "BIGNUMERIC": "DECIMAL",
}
"""BigQuery's type names (as the DB-API's ``description`` reports them) to the names of
:data:`sqlgrad.engines.base.TYPE_KINDS`; DATE, TIME, DATETIME and TIMESTAMP keep their names."""


class BigQueryEngine(DBAPIEngine):
    """BigQuery (GoogleSQL), every job in one session of the engine."""

    capabilities = Capabilities(
        dialect="bigquery",
        recursive_cte=True,
        recursive_step=None,
        recursion_limit=500,
        window_functions=True,
        max_select_columns=10_000,
        max_table_columns=10_000,
        temp_tables=True,
        native_tanh=True,
        transactions=False,
        percentile_cont=False,
        mutable_tables=True,
        reads_files=False,
        scripting="bigquery",
    )

    def __init__(self, url: str, connection: Any | None = None) -> None:
        self.url = url
        self.project, self.dataset, options = parse_url(url)
        self.location = options.pop("location", None) or None
        billed = options.pop("maximum_bytes_billed", None)
        if options:
            raise EngineError(
                f"unknown BigQuery URL option(s) {', '.join(sorted(options))}; "
                "known: location, maximum_bytes_billed"
            )
        try:
            self.maximum_bytes_billed = int(billed) if billed else None
        except ValueError:
            raise EngineError(f"maximum_bytes_billed must be a whole number, got {billed!r}") from None
        try:
            import google.cloud.bigquery as bigquery
        except ImportError as err:
            raise MissingDriverError(
                "BigQuery needs the google-cloud-bigquery client: pip install 'sqlgrad[bigquery]'"
            ) from err
        self._bq = bigquery
        self.session_id: str | None = None
        if connection is not None:
            self._con, self._owned = connection, False
        else:
            try:
                import google.cloud.bigquery.dbapi as dbapi

                client = bigquery.Client(project=self.project, location=self.location)
                self._con = dbapi.connect(client)
            except Exception as err:
                raise EngineError(f"cannot open BigQuery project {self.project!r}: {_first(err)}") from err
            self._owned = True
        self.session_id = self._start_session()

    # --- jobs -------------------------------------------------------------------------------------

    def job_config(self, **extra: Any) -> Any:
        """A fresh ``QueryJobConfig``: default dataset, session, byte cap, plus ``extra`` settings.
        (The DB-API writes query parameters into the config it is given: never share one.)"""
        config = self._bq.QueryJobConfig(default_dataset=f"{self.project}.{self.dataset}", **extra)
        if self.session_id is not None:
            config.connection_properties = [self._bq.ConnectionProperty("session_id", self.session_id)]
        if self.maximum_bytes_billed is not None:
            config.maximum_bytes_billed = self.maximum_bytes_billed
        return config

    def _start_session(self) -> str:
        cur = self._con.cursor()
        try:
            cur.execute("SELECT 1", job_config=self.job_config(create_session=True))
            cur.fetchall()
            job = cur.query_job
            info = getattr(job, "session_info", None) if job is not None else None
            session = getattr(info, "session_id", None)
        except Exception as err:
            raise EngineError(f"cannot start a BigQuery session in {self.project!r}: {_first(err)}") from err
        finally:
            cur.close()
        if not session:
            raise EngineError("BigQuery started no session (the job reported no session id)")
        return str(session)

    def _execute(self, sql: str) -> Any:
        cur = self._con.cursor()
        cur.execute(sql, job_config=self.job_config())
        return cur

    def _type_name(self, type_code: Any) -> str:
        name = str(type_code).upper()
        return TYPE_NAMES.get(name, name)

    def describe(self, relation: Any) -> list[Column]:
        """Columns from a dry run of ``SELECT * FROM relation`` (not billed)."""

        query = as_query(relation)
        sql = self.render(query)
        cur = self._con.cursor()
        try:
            cur.execute(sql, job_config=self.job_config(dry_run=True, use_query_cache=False))
            return [Column(d[0], self._type_name(d[1])) for d in cur.description or []]
        except Exception as err:
            raise EngineError(f"BigQueryEngine refused a statement: {_first(err)}") from err
        finally:
            cur.close()

    def create_table(self, name: Any, columns: Any, rows: Any, batch: int = 10_000) -> int:
        """A table of the default dataset, rows sent as ``INSERT ... VALUES`` statements (one job each
        few hundred kilobytes; the DB-API's ``executemany`` would run one job per row)."""
        return create_table_with_values(self, name, columns, rows)

    def close(self) -> None:
        """End the session (its temporary tables go with it), then the connection if it is ours."""
        if self.session_id is not None:
            try:
                cur = self._con.cursor()
                cur.execute("CALL BQ.ABORT_SESSION()", job_config=self.job_config())
                cur.close()
            except Exception:  # the session expires by itself after 24 hours of inactivity
                pass
            self.session_id = None
        if self._owned:
            self._con.close()


def parse_url(url: str) -> tuple[str, str, dict[str, str]]:
    """``bigquery://project/dataset?options`` -> (project, dataset, options).

    >>> parse_url("bigquery://my-project/sales?location=EU")
    ('my-project', 'sales', {'location': 'EU'})
    """
    if not url.lower().startswith("bigquery://"):
        raise EngineError(f"not a BigQuery URL: {url!r} (expected bigquery://PROJECT/DATASET)")
    rest, _, query = url.split("://", 1)[1].partition("?")
    parts = [p for p in rest.split("/") if p]
    if len(parts) != 2:
        raise EngineError(f"bad BigQuery URL {url!r}: write bigquery://PROJECT/DATASET")
    return parts[0], parts[1], url_options(query)


def _first(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[0] if lines else type(err).__name__
