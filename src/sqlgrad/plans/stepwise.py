"""``stepwise``: one statement per iteration, the parameters kept in a table of the database.

Each iteration, in one transaction, inserts the next parameter row computed from the current one and
deletes the old row: the article's "intermediate tables". The run's history and checkpoints are
written by :mod:`sqlgrad.plans.driver` between chunks of updates.
"""

from __future__ import annotations

from sqlglot import exp

from ..data import create_temp_table
from ..engines.base import Engine
from ..sqlexpr import col, disposable, table
from .base import Plan, PlanInput, Progress, at_iteration, check_history, keep_only
from .program import ITERATION, LOSS


class StepwisePlan(Plan):
    name = "stepwise"
    description = "one statement per iteration; parameters in a table"
    gathers = True

    def step(self, inp: PlanInput, state: str) -> list[exp.Expression]:
        """The statements of one update where tables take DELETE: insert the next row computed from
        the only row of ``state``, then delete the old one. The same statements serve every update:
        they are built and rendered once."""
        latest = exp.select(exp.Max(this=col(ITERATION))).from_(table(state)).subquery()
        # built for one rendering: neither copied by the builders nor before rendering
        insert = exp.insert(inp.program.step_select(inp.data, table(state)), table(state), copy=False)
        drop_old = exp.delete(table(state), where=exp.LT(this=col(ITERATION), expression=latest))
        return [disposable(insert), disposable(drop_old)]

    def statements(self, inp: PlanInput) -> list[exp.Expression]:
        """What a run executes: the state table, then the statements of one update (those of update
        ``k = 0`` where tables take no DELETE: each update appends the row of ``k + 1``)."""
        state = inp.table_name("state")
        caps = inp.program.capabilities
        if not caps.mutable_tables:
            step = inp.program.step_select(inp.data, table(state), at_iteration(0))
            return [state_table_statement(state, inp), exp.insert(step, table(state), copy=False)]
        return [state_table_statement(state, inp), *self.step(inp, state)]

    def advance(
        self,
        engine: Engine,
        inp: PlanInput,
        state: str,
        start: int,
        count: int,
        progress: Progress | None = None,
    ) -> list[tuple[int, float]]:
        if not engine.capabilities.mutable_tables:
            return self._advance_append_only(engine, inp, state, start, count, progress)
        keep_only(engine, state, start)
        step = [engine.render(st) for st in self.step(inp, state)]
        current_loss = engine.render(exp.select(col(LOSS)).from_(table(state)))
        history: list[tuple[int, float]] = []
        for k in range(start, start + count):
            with engine.transaction():
                for sql in step:
                    engine.execute(sql)
            loss = engine.scalar(current_loss)
            check_history([(k, loss)], 1)
            history.append((k, loss))
            if progress:
                progress(k + 1, loss)
        return history

    def _advance_append_only(
        self, engine: Engine, inp: PlanInput, state: str, start: int, count: int, progress: Progress | None
    ) -> list[tuple[int, float]]:
        """For engines whose tables take INSERT but not DELETE (Spark): the state table keeps one row
        per update; the row of iteration k+1 is inserted from k's."""
        prog = inp.program
        history: list[tuple[int, float]] = []
        for k in range(start, start + count):
            step = prog.step_select(inp.data, table(state), at_iteration(k))
            engine.execute(disposable(exp.insert(step, table(state), copy=False)))
            loss = engine.scalar(exp.select(col(LOSS)).from_(table(state)).where(at_iteration(k + 1)))
            check_history([(k, loss)], 1)
            history.append((k, loss))
            if progress:
                progress(k + 1, loss)
        return history


def state_table_statement(name: str, inp: PlanInput) -> exp.Expression:
    """The state table's creation, as a run makes it (:func:`~sqlgrad.batches.work_table`): temporary
    where temporary tables take DELETE, else a plain table of the run."""
    caps = inp.program.capabilities
    first = inp.program.init_select(inp.init)
    if caps.temp_tables and caps.mutable_tables:
        return create_temp_table(name, first)
    return exp.Create(this=table(name), kind="TABLE", expression=first)
