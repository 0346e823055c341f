"""Reproducible row splits and mini-batches, computed in SQL from ``--seed``.

Every engine must put the same rows in the same batch, so nothing here depends on an engine's hash
function, random generator or physical row order:

1. The prepared rows are numbered ``r = 0..n-1`` by ``ROW_NUMBER() OVER (ORDER BY <every prepared
   column>)``: a total order on the values themselves (rows that tie are identical, so swapping them
   changes nothing). Tables need no key column.
2. A seeded affine permutation ``p(r) = MOD(a * r + c, n)`` (``a`` coprime with ``n``, so it is a
   bijection) sends the first ``n_valid`` slots to the validation set (``--validation``) and numbers the
   training rows ``row_key = p(r) - n_valid``, ``0..n_train-1``.
3. Each epoch draws a fresh ``(mult, shift)`` from ``(seed, epoch)``; update ``b`` of the epoch uses the
   training rows whose ``MOD(mult * row_key + shift, n_train)`` lies in ``[b * batch_size,
   (b + 1) * batch_size)``. An epoch is ``ceil(n_train / batch_size)`` updates and visits every training row
   once (the last batch may be smaller). The schedule is a small table, one row per update, that the
   training statements join (:data:`sqlgrad.plans.program.BATCH_COLUMNS`).

Integers stay below ``n**2``, well inside BIGINT for any table up to billions of rows.

>>> s = BatchSchedule(seed=0, n_train=10, batch_size=4)
>>> s.steps_per_epoch
3
>>> rows = s.rows(0, 3)
>>> [(r[0], r[4], r[5]) for r in rows]
[(0, 0, 4), (1, 4, 8), (2, 8, 10)]
>>> sorted(k for r in rows for k in s.members(r))
[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlglot import exp

from .engines.base import Engine
from .errors import UsageError
from .sqlexpr import alias, col, num, table

MAX_ROWS = 2**31
"""Rows beyond this would let ``mult * row_key`` leave BIGINT."""


def affine(seed: Sequence[int], n: int) -> tuple[int, int]:
    """A seeded ``(a, c)`` with ``gcd(a, n) == 1``: ``r -> (a * r + c) mod n`` permutes ``0..n-1``.

    >>> a, c = affine([7, 1], 10)
    >>> sorted((a * r + c) % 10 for r in range(10)) == list(range(10))
    True
    """
    if n <= 1:
        return 1, 0
    rng = np.random.default_rng(list(seed))
    while True:
        a = int(rng.integers(1, n))
        if math.gcd(a, n) == 1:
            return a, int(rng.integers(0, n))


@dataclass(frozen=True)
class BatchSchedule:
    """Which training rows each update uses: ``row_key`` in ``0..n_train-1``, batches per epoch."""

    seed: int
    n_train: int
    batch_size: int

    @property
    def steps_per_epoch(self) -> int:
        return max(1, math.ceil(self.n_train / self.batch_size))

    def rows(self, start: int, stop: int) -> list[tuple[int, int, int, int, int, int]]:
        """The schedule rows ``(iteration, mult, shift, modulus, lo, hi)`` of updates ``start..stop-1``."""
        out = []
        for k in range(start, stop):
            epoch, b = divmod(k, self.steps_per_epoch)
            mult, shift = affine([self.seed, 1, epoch], self.n_train)
            lo = b * self.batch_size
            out.append((k, mult, shift, self.n_train, lo, min(lo + self.batch_size, self.n_train)))
        return out

    @staticmethod
    def members(row: Sequence[int]) -> list[int]:
        """The row keys one schedule row selects (what the SQL filter keeps), for checking."""
        _, mult, shift, modulus, lo, hi = row
        return [k for k in range(modulus) if lo <= (mult * k + shift) % modulus < hi]


def work_table(engine: Engine, name: str, select: exp.Expression) -> exp.Create:
    """``CREATE TEMPORARY TABLE name AS select`` where temporary tables take INSERTs, else a plain table
    of the run (Spark's temporary tables are cached views)."""
    caps = engine.capabilities
    props = exp.Properties(expressions=[exp.TemporaryProperty()])
    temporary = caps.temp_tables and caps.mutable_tables
    return exp.Create(
        this=table(name), kind="TABLE", expression=select, properties=props if temporary else None
    )


def create_values_table(
    engine: Engine, name: str, columns: Sequence[str], rows: Sequence[Sequence[int]], chunk: int = 200
) -> None:
    """A table of whole numbers (BIGINT) from Python rows, in statements of at most ``chunk`` rows
    (SQLite caps a compound SELECT at 500 terms)."""
    bigint = exp.DataType.build("BIGINT")

    def select(part: Sequence[Sequence[int]]) -> exp.Expression:
        selects = [
            exp.select(
                *(
                    alias(exp.Cast(this=num(int(v)), to=bigint.copy()), c)
                    for c, v in zip(columns, r, strict=True)
                )
            )
            for r in part
        ]
        out: exp.Expression = selects[0]
        for s in selects[1:]:  # built in place: copying the growing statement each time is quadratic
            out = exp.union(out, s, distinct=False, copy=False)
        return out

    engine.execute(work_table(engine, name, select(rows[:chunk])))
    for i in range(chunk, len(rows), chunk):
        engine.execute(exp.insert(select(rows[i : i + chunk]), table(name)))


@dataclass(frozen=True)
class Split:
    """The tables a run trains and validates on (both temporary, under the run's prefix)."""

    train_table: str
    valid_table: str | None
    n_train: int
    n_valid: int


def split_rows(
    engine: Engine,
    source: str,
    columns: Sequence[str],
    n_rows: int,
    validation: float,
    seed: int,
    prefix: str,
    row_key: str,
    extra: Sequence[exp.Expression] = (),
) -> Split:
    """Number the prepared rows, hold out ``validation`` of them, and give the training rows a
    ``row_key`` ``0..n_train-1`` (see the module docstring). ``extra`` are further aliased expressions
    over the prepared columns kept in the training table (the sample weights)."""
    if n_rows >= MAX_ROWS:
        raise UsageError(f"mini-batches and --validation take at most {MAX_ROWS - 1} rows, got {n_rows}")
    n_valid = round(n_rows * validation)
    if validation > 0 and (n_valid < 1 or n_valid >= n_rows):
        raise UsageError(
            f"--validation {validation} of {n_rows} rows leaves {n_valid} for validation and "
            f"{n_rows - n_valid} for training; each needs at least one"
        )
    a, c = affine([seed, 0], n_rows)
    order = exp.Window(
        this=exp.RowNumber(), order=exp.Order(expressions=[exp.Ordered(this=col(x)) for x in columns])
    )
    numbered = (
        exp.select(*(col(x) for x in columns), alias(exp.Sub(this=order, expression=num(1)), "r"))
        .from_(table(source))
        .subquery("z")
    )
    slot = exp.Mod(this=exp.Paren(this=num(a) * col("r") + num(c)), expression=num(n_rows))
    train_name = f"{prefix}_train"
    train = (
        exp.select(*(col(x) for x in columns), alias(slot.copy() - num(n_valid), row_key), *extra)
        .from_(numbered.copy())
        .where(exp.GTE(this=slot.copy(), expression=num(n_valid)))
    )
    engine.execute(work_table(engine, train_name, train))
    valid_name = None
    if n_valid:
        valid_name = f"{prefix}_valid"
        valid = (
            exp.select(*(col(x) for x in columns))
            .from_(numbered)
            .where(exp.LT(this=slot, expression=num(n_valid)))
        )
        engine.execute(work_table(engine, valid_name, valid))
    return Split(train_name, valid_name, n_rows - n_valid, n_valid)
