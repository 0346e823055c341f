"""Spark SQL: a local session (``spark://local[2]``, ``spark://local``) or a remote one through Spark
Connect (``sc://host:port``); extra ``sqlgrad[spark]`` (needs Java 17 for local mode).

Measured (``docs/engines.md``, Spark 4.3 local[2]): a recursive reference inside an aggregate is refused
(``INVALID_RECURSIVE_REFERENCE.PLACE``) but a LATERAL subquery holding the aggregate works; recursion
stops at ``spark.sql.cteRecursionLevelLimit`` (100 by default, raised per run here); a statement per
iteration was faster than one recursive statement (0.34 against 0.65 s per iteration at 100k rows).
Spark has no temporary tables: the prepared data of a run is a cached temporary view (``CACHE TABLE
t AS ...``), and the stepwise plan keeps its parameter rows in a plain table of the run, appending one
row per iteration (Spark tables take no DELETE), dropped at the end.

``spark://local[2]?warehouse=/dir`` keeps tables (and a Derby metastore) under ``/dir`` across
processes, so that ``sqlgrad load`` and ``sqlgrad train`` can run one after the other; without it a
local session's tables live as long as the session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any
from urllib.parse import parse_qs

from sqlglot import exp

from ..errors import EngineError, MissingDriverError
from .base import Capabilities, Column, Engine, as_query


class SparkEngine(Engine):
    capabilities = Capabilities(
        dialect="spark",
        recursive_cte=True,
        recursive_step="lateral",
        recursion_limit=None,
        window_functions=True,
        temp_tables=True,
        native_tanh=True,
        transactions=False,
        mutable_tables=False,
        reads_files=False,
    )

    def __init__(self, url: str = "spark://local[2]", session: Any | None = None) -> None:
        self.url = url
        if session is not None:
            self.spark, self._owned = session, False
            return
        try:
            from pyspark.sql import SparkSession
        except ImportError as err:
            raise MissingDriverError("Spark needs pyspark: pip install 'sqlgrad[spark]'") from err
        active = SparkSession.getActiveSession()
        if active is not None and not url.startswith("sc://"):
            # a session already runs in this process (a notebook, an application): use it, never stop it
            self.spark, self._owned = active, False
            return
        try:
            if url.startswith("sc://"):
                builder = SparkSession.builder.remote(url)
            else:
                master, _, query = url.split("://", 1)[1].partition("?")
                master = master or "local[2]"
                builder = (
                    SparkSession.builder.master(master)
                    .appName("sqlgrad")
                    .config("spark.ui.enabled", "false")
                    .config("spark.sql.shuffle.partitions", "4")
                    .config("spark.ui.showConsoleProgress", "false")
                )
                warehouse = parse_qs(query).get("warehouse", [None])[0]
                if not warehouse:
                    # tables live as long as the session: keep their files out of the working directory
                    self._scratch = tempfile.mkdtemp(prefix="sqlgrad-spark-")
                    builder = builder.config("spark.sql.warehouse.dir", self._scratch)
                else:
                    path = os.path.abspath(warehouse)
                    os.makedirs(path, exist_ok=True)
                    builder = (
                        builder.config("spark.sql.warehouse.dir", os.path.join(path, "warehouse"))
                        .config(
                            "javax.jdo.option.ConnectionURL",
                            f"jdbc:derby:;databaseName={os.path.join(path, 'metastore_db')};create=true",
                        )
                        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={path}")
                        .enableHiveSupport()
                    )
            self.spark = builder.getOrCreate()
            if not url.startswith("sc://"):
                self.spark.sparkContext.setLogLevel("ERROR")
        except Exception as err:
            raise EngineError(f"cannot start Spark at {url}: {_first(err)}") from err
        self._owned = True

    def render(self, statement: exp.Expression, pretty: bool = False) -> str:
        # Spark has no temporary tables: a run's table is a cached temporary view, computed eagerly.
        if (
            isinstance(statement, exp.Create)
            and statement.kind == "TABLE"
            and statement.find(exp.TemporaryProperty) is not None
            and statement.expression is not None
        ):
            statement = exp.Cache(
                this=statement.this.copy(), expression=statement.expression.copy(), lazy=False
            )
        return super().render(statement, pretty)

    def _execute(self, sql: str) -> Any:
        return self.spark.sql(sql)

    def _fetchall(self, result: Any) -> list[tuple]:
        return [tuple(r) for r in result.collect()]

    def describe(self, relation: exp.Expression) -> list[Column]:
        query = as_query(relation)
        df = self._run(query.limit(0))
        return [Column(f.name, f.dataType.simpleString().upper()) for f in df.schema.fields]

    def drop_table(self, name: str) -> None:
        from ..sqlexpr import table

        # A run's prepared data is a cached temporary view; other tables are managed tables.
        self.execute(exp.Uncache(this=table(name), exists=True))
        temp_views = {r[1] for r in self.query("SHOW VIEWS") if r[2]}  # (namespace, viewName, isTemporary)
        kind = "VIEW" if name in temp_views else "TABLE"
        self.execute(exp.Drop(tables=[table(name)], kind=kind, exists=True))

    def allow_recursion(self, iterations: int) -> None:
        self.execute(f"SET spark.sql.cteRecursionLevelLimit = {int(iterations) + 10}")

    def _executemany(self, sql: str, rows: list[tuple]) -> None:
        raise EngineError("internal: Spark loads rows through create_table")

    def create_table(
        self, name: Any, columns: Any, rows: Any, batch: int = 10_000, temporary: bool = False
    ) -> int:
        """A managed table from rows, through a DataFrame (Spark has no parameterised INSERT; no
        temporary tables: ``temporary`` is ignored, and the caller drops the table)."""
        from pyspark.sql.types import BooleanType, DoubleType, LongType, StringType, StructField, StructType

        from ..sqlexpr import table

        types = {"integer": LongType(), "float": DoubleType(), "boolean": BooleanType(), "text": StringType()}
        schema = StructType([StructField(c, types.get(k, StringType()), True) for c, k in columns])
        data = [tuple(r) for r in rows]
        df = self.spark.createDataFrame(data, schema=schema)
        target = self.render(table(name if isinstance(name, str) else list(name)))
        try:
            df.write.mode("errorifexists").saveAsTable(target)
        except Exception as err:
            raise EngineError(f"Spark refused the rows: {_first(err)}") from err
        return len(data)

    def close(self) -> None:
        if self._owned:
            self.spark.stop()
        scratch = getattr(self, "_scratch", None)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def _first(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[0] if lines else type(err).__name__
