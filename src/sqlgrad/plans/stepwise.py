"""``stepwise``: one statement per iteration, the parameters kept in a table of the database.

Each iteration, in one transaction, inserts the next parameter row computed from the current one,
appends ``(iteration, loss)`` to the history table, and deletes the old row: the article's
"intermediate tables", and the checkpoint a resumable run starts from.
"""

from __future__ import annotations

import contextlib

from sqlglot import exp

from ..data import create_temp_table
from ..engines.base import Engine
from ..sqlexpr import col, num, table
from .base import Plan, PlanInput, PlanResult, Progress, check_history
from .program import ITERATION, LOSS


class StepwisePlan(Plan):
    name = "stepwise"
    description = "one statement per iteration; parameters and history in tables"

    def setup(self, inp: PlanInput) -> list[exp.Expression]:
        params, history = inp.table_name("params"), inp.table_name("history")
        hist = exp.select(col(ITERATION), col(LOSS)).from_(table(params)).where(exp.false())
        return [
            create_temp_table(params, inp.program.init_select(inp.init)),
            create_temp_table(history, hist),
        ]

    def step(self, inp: PlanInput) -> list[exp.Expression]:
        """The statements of one iteration. The parameter table holds one row between iterations, so
        the same statements serve every iteration: they are built and rendered once."""
        params, history = inp.table_name("params"), inp.table_name("history")
        latest = exp.select(exp.Max(this=col(ITERATION))).from_(table(params)).subquery()
        insert = exp.insert(inp.program.step_select(inp.data, table(params)), table(params))
        record = exp.insert(
            exp.select(exp.Sub(this=col(ITERATION), expression=num(1)), col(LOSS))
            .from_(table(params))
            .where(exp.EQ(this=col(ITERATION), expression=latest.copy())),
            table(history),
        )
        drop_old = exp.delete(table(params), where=exp.LT(this=col(ITERATION), expression=latest))
        return [insert, record, drop_old]

    def statements(self, inp: PlanInput) -> list[exp.Expression]:
        return [*self.setup(inp), *self.step(inp)]

    def run(self, engine: Engine, inp: PlanInput, progress: Progress | None = None) -> PlanResult:
        if not engine.capabilities.mutable_tables:
            return self._run_append_only(engine, inp, progress)
        params, history = inp.table_name("params"), inp.table_name("history")
        count = 0
        try:
            for st in self.setup(inp):
                engine.execute(st)
            step = [engine.render(st) for st in self.step(inp)]
            current_loss = engine.render(exp.select(col(LOSS)).from_(table(params)))
            for k in range(inp.iterations):
                with engine.transaction():
                    for sql in step:
                        engine.execute(sql)
                count += 3
                loss = engine.scalar(current_loss)
                check_history([(k, loss)], 1)
                if progress:
                    progress(k + 1, loss)
            rows = engine.query(exp.select(exp.Star()).from_(table(params)))
            hist = engine.query(
                exp.select(col(ITERATION), col(LOSS)).from_(table(history)).order_by(col(ITERATION))
            )
        finally:
            for name in (params, history):
                with contextlib.suppress(Exception):
                    engine.drop_table(name)
        history_rows = [(int(i), v) for i, v in hist]
        check_history(history_rows, inp.iterations)
        weights = inp.program.weights_from_row(inp.program.param_values(rows[0]))
        return PlanResult(weights, history_rows, statements=count)

    def _run_append_only(self, engine: Engine, inp: PlanInput, progress: Progress | None) -> PlanResult:
        """For engines whose tables take INSERT but not DELETE (Spark): the parameter table of the run
        is a plain table that keeps one row per iteration; iteration k+1's row is inserted from k's, and
        the rows double as the history."""
        prog = inp.program
        params = inp.table_name("params")
        at = lambda k: exp.EQ(this=col(ITERATION), expression=num(k))  # noqa: E731
        history: list[tuple[int, float]] = []
        try:
            init = prog.init_select(inp.init)
            engine.execute(exp.Create(this=table(params), kind="TABLE", expression=init))
            for k in range(inp.iterations):
                engine.execute(exp.insert(prog.step_select(inp.data, table(params), at(k)), table(params)))
                loss = engine.scalar(exp.select(col(LOSS)).from_(table(params)).where(at(k + 1)))
                check_history([(k, loss)], 1)
                history.append((k, loss))
                if progress:
                    progress(k + 1, loss)
            row = engine.query(exp.select(exp.Star()).from_(table(params)).where(at(inp.iterations)))[0]
        finally:
            with contextlib.suppress(Exception):
                engine.drop_table(params)
        weights = prog.weights_from_row(prog.param_values(row))
        return PlanResult(weights, history, statements=2 * inp.iterations)
