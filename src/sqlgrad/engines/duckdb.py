"""Embedded DuckDB, the default engine: ``duckdb://`` (in memory) or ``duckdb:///path/to/file.db``."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, unquote

from sqlglot import exp

from ..errors import EngineError
from .base import Capabilities, Column, Engine, GatheredGradients, VectorDot, _first_line, as_query


class DuckDBEngine(Engine):
    """DuckDB 2.x, in process. The URL may carry DuckDB settings: ``duckdb:///big.db?memory_limit=2GB``
    bounds its memory (it then spills to disk), ``?threads=1`` its threads.

    Measured (``docs/engines.md``): every form of aggregate in a recursive term works; no recursion cap
    seen up to 1,000,000 iterations; 2,500 columns fine; literals like ``0.0105101`` are DECIMAL (so
    every literal is cast to DOUBLE); the article's nested query is refused past an expression depth
    of 1,000. From about 1,000 parameters (200 with Adam) the long plan trained faster than the wide
    form (``long_from_params``; ``docs/strategies.md``). The recursive statement's updates run on one
    thread, so from 300,000 rows per update ``auto`` takes stepwise (``stepwise_from_rows``).
    """

    capabilities = Capabilities(
        dialect="duckdb",
        recursive_cte=True,
        recursive_step="cross",
        recursion_limit=None,
        window_functions=True,
        max_select_columns=None,
        max_table_columns=None,
        temp_tables=True,
        temp_schema="temp",
        native_tanh=True,
        transactions=True,
        percentile_cont=True,
        max_expression_depth=1000,
        reads_files=True,
        long_from_params=1000,
        long_from_params_with_state=200,
        # a recursive CTE whose working set is one row runs its updates on one thread (DuckDB's recursive
        # runtime executes inline for a small frontier), the stepwise statements on all threads: measured
        # on the article's network with 2 threads (benchmarks: docs/strategies.md), recursive and stepwise
        # tie at 300k rows; at 1M stepwise took 0.37x numpy's time, recursive 0.58x (0.56x and 0.62x
        # with threads=1: then recursive is the faster one at every size)
        stepwise_from_rows=300_000,
        # a 64-to-32 layer on 200k rows: 0.36 s as list dot products against 1.08 s as scalar products,
        # 64-to-64 0.75 s against 2.37 s; a tie at 8-to-4, scalars ahead at 2-to-2, 8-to-1 and 64-to-2
        # (benchmarks/vector_dot.py, benchmarks/results/vector_dot.json)
        vector_dot=VectorDot("list_value", "list_inner_product", min_length=8, min_count=4),
        # the gradient sums alone, one layer on 100k rows (benchmarks/floor.py, results/floor_shapes.json):
        # gathered in blocks of 4,096 rows against one SUM per weight, 64-to-32 0.42 s against 0.76 s,
        # 32-to-32 0.20 s against 0.35 s, 24-to-24 0.18 s against 0.27 s; a tie at 32-to-16 (10.7
        # products per gathered value); slower at 32-to-10 (0.105 s against 0.083 s), 16-to-16 and
        # 128-to-4; blocks of 2,048 tie, 512 and 16,384 are slower. 50 gathered DOUBLEs per row held
        # 1.43 GB per million rows at the peak (3.6x their 400 MB) and did not spill: 200 MB of
        # memory_limit ran out (docs/benchmarks.md, "Wide models, session 13")
        gathered_gradients=GatheredGradients(
            "list", "list_inner_product", "rowid", block_rows=4096, products_per_value=12, bytes_per_value=32
        ),
    )

    def __init__(self, url: str = "duckdb://", connection: Any | None = None) -> None:
        import duckdb

        self.url = url
        if connection is not None:
            self._con = connection
            self._owned = False
        else:
            path, config = _path_from_url(url)
            try:
                self._con = duckdb.connect(path, config=config)
            except Exception as err:
                raise EngineError(f"cannot open DuckDB database {path!r}: {_first_line(err)}") from err
            self._owned = True
        if int(self.scalar("SELECT current_setting('threads')")) <= 1:
            # one thread: stepwise gains nothing over the recursive statement, which stays the faster
            self.capabilities = replace(type(self).capabilities, stepwise_from_rows=None)

    @property
    def connection(self) -> Any:
        """The underlying ``duckdb.DuckDBPyConnection``."""
        return self._con

    def _execute(self, sql: str) -> Any:
        return self._con.execute(sql)

    def _fetchall(self, result: Any) -> list[tuple]:
        return result.fetchall()

    def _executemany(self, sql: str, rows: list[tuple]) -> None:
        self._con.executemany(sql, rows)

    def memory_limit(self) -> int | None:
        """DuckDB's ``memory_limit`` setting in bytes (``'18.8 GiB'``, ``'500.0 MB'``), None if unset.

        >>> e = DuckDBEngine("duckdb://?memory_limit=512MB")
        >>> e.memory_limit()
        511914803
        """
        return _bytes(str(self.scalar("SELECT current_setting('memory_limit')") or ""))

    @contextlib.contextmanager
    def training_settings(self) -> Iterator[None]:
        """Training statements are planned without DuckDB's common-subexpression pass.

        The staged statements already give every shared value a column of its own, so the pass finds
        nothing, yet it is the largest part of planning a wide network's statement: EXPLAIN of the
        recursive statement of 32-64-64-2 took 8.0 s with it and 3.4 s without, a 64-32-10 one 1.36 s and
        0.83 s; the runs took as long as before, apart from that (``docs/benchmarks.md``). The setting is
        DuckDB's ``disabled_optimizers``, which is global to the database instance: other connections to
        the same instance plan without the pass while a training runs. The previous value is put back.
        """
        before = str(self.scalar("SELECT current_setting('disabled_optimizers')") or "")
        passes = [p.strip() for p in before.split(",") if p.strip()]
        if _NO_PLANNING_PASS in passes:
            yield
            return
        self._set_disabled_optimizers(",".join([*passes, _NO_PLANNING_PASS]))
        try:
            yield
        finally:
            with contextlib.suppress(Exception):  # a closed connection has nothing left to put back
                self._set_disabled_optimizers(before)

    def _set_disabled_optimizers(self, value: str) -> None:
        setting = exp.EQ(this=exp.var("disabled_optimizers"), expression=exp.Literal.string(value))
        self.execute(exp.Set(expressions=[exp.SetItem(this=setting)]))

    def register_frame(self, name: str, frame: Any) -> bool:
        try:
            self._con.register(name, frame)
        except Exception as err:
            raise EngineError(f"DuckDB cannot read this data frame: {_first_line(err)}") from err
        return True

    def unregister_frame(self, name: str) -> None:
        self._con.unregister(name)

    def allow_nesting(self, depth: int) -> None:
        # The planner's depth counts expressions inside each level too: leave ample room.
        needed = int(depth) * 4 + 1000
        if needed > (self.capabilities.max_expression_depth or 0):
            self.execute(f"SET max_expression_depth = {needed}")

    def describe(self, relation: exp.Expression) -> list[Column]:
        query = as_query(relation)
        result = self._run(query.limit(0))
        return [Column(name, str(type_code)) for name, type_code, *_ in result.description]

    def close(self) -> None:
        if self._owned:
            self._con.close()


_NO_PLANNING_PASS = "common_subexpressions"
"""The DuckDB optimizer pass that training statements are planned without
(:meth:`DuckDBEngine.training_settings`)."""


def _path_from_url(url: str) -> tuple[str, dict[str, str]]:
    """The database path and the DuckDB settings of a URL: ``duckdb:///file.db?memory_limit=4GB&threads=2``
    (any of DuckDB's configuration options; an unknown one is an error when the database opens).

    >>> _path_from_url("duckdb:///runs.db?memory_limit=100MB&threads=1")
    ('runs.db', {'memory_limit': '100MB', 'threads': '1'})
    >>> _path_from_url("duckdb://")
    (':memory:', {})
    """
    if not url.startswith("duckdb://"):
        raise EngineError(f"not a DuckDB URL: {url!r} (expected duckdb:// or duckdb:///path/to/file.db)")
    rest, _, options = url[len("duckdb://") :].partition("?")
    config = {}
    for k, v in parse_qsl(options, keep_blank_values=True, strict_parsing=False):
        if not k or not v:
            raise EngineError(f"bad DuckDB URL {url!r}: settings are written ?name=value&name=value")
        config[k] = v
    if rest in ("", "/", "/:memory:", ":memory:"):
        return ":memory:", config
    if not rest.startswith("/"):
        raise EngineError(
            f"bad DuckDB URL {url!r}: write duckdb:///relative.db or duckdb:////absolute/path.db"
        )
    return unquote(rest[1:]), config


_UNITS = {
    "": 1,
    "B": 1,
    "BYTES": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


def _bytes(text: str) -> int | None:
    """``'18.8 GiB'`` as bytes; None for an empty or unlimited setting or an unknown unit.

    >>> _bytes("18.8 GiB"), _bytes("500.0 MB"), _bytes("1024 bytes"), _bytes("")
    (20186346291, 500000000, 1024, None)
    """
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", text)
    if match is None or match.group(2).upper() not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])
