"""``recursive``: the whole training as one ``WITH RECURSIVE`` statement, one parameter row per iteration.

The anchor is the initial parameter row; the recursive term is one iteration
(:meth:`~sqlgrad.plans.program.TrainingProgram.step_select`), stopped by ``iteration < K``. The engine
plans the query once and runs every iteration inside, so there is no per-iteration round trip.
"""

from __future__ import annotations

from sqlglot import exp

from ..engines.base import Capabilities, Engine
from ..errors import UsageError
from ..sqlexpr import col, disposable, num, table
from .base import Plan, PlanInput, PlanResult, Progress, at_iteration, check_history, keep_only
from .program import ITERATION, LOSS


class RecursivePlan(Plan):
    name = "recursive"
    description = "one WITH RECURSIVE statement for the whole training"
    gathers = True

    def query(self, inp: PlanInput, anchor: exp.Expression | None = None, start: int = 0) -> exp.Select:
        """``WITH RECURSIVE steps AS (anchor UNION ALL <one update>) SELECT * FROM steps``, for updates
        ``start..start+iterations-1``; the anchor defaults to the initial row."""
        prog = inp.program
        cte_name = inp.table_name("steps")
        more = exp.LT(this=col(ITERATION), expression=num(start + inp.iterations))
        lateral = prog.capabilities.recursive_step == "lateral"
        step = prog.step_select(inp.data, table(cte_name), more, lateral=lateral)
        first = anchor if anchor is not None else prog.init_select(inp.init)
        # both sides are built for this statement: no copies (the step of a wide model is large)
        body = exp.union(first, step, distinct=False, copy=False)
        cte = exp.CTE(this=body, alias=exp.TableAlias(this=exp.to_identifier(cte_name, quoted=True)))
        query = exp.select(exp.Star()).from_(table(cte_name)).order_by(col(ITERATION))
        query.set("with_", exp.With(expressions=[cte], recursive=True))
        return query

    def statements(self, inp: PlanInput) -> list[exp.Expression]:
        return [disposable(self.query(inp))]

    def problem(self, caps: Capabilities, iterations: int) -> str | None:
        if not (caps.recursive_cte and caps.recursive_step):
            return (
                f"{caps.dialect} cannot run the recursive plan (no aggregate in a recursive term); use "
                "--strategy stepwise"
            )
        if caps.recursion_limit is not None and iterations > caps.recursion_limit:
            limit = caps.recursion_limit
            return f"{iterations} iterations exceed {caps.dialect}'s recursion limit of {limit}"
        return None

    def _check(self, engine: Engine, count: int) -> None:
        problem = self.problem(engine.capabilities, count)
        if problem:
            raise UsageError(f"{engine.url}: {problem}")

    def run(self, engine: Engine, inp: PlanInput, progress: Progress | None = None) -> PlanResult:
        """One statement from the initial literals, the rows read back directly."""
        self._check(engine, inp.iterations)
        engine.allow_recursion(inp.iterations)
        rows = engine.query(disposable(self.query(inp)))
        history = [(int(r[0]) - 1, r[1]) for r in rows[1:]]
        check_history(history, inp.iterations)
        last = rows[-1]
        if progress:
            progress(inp.iterations, last[1])
        weights = inp.program.weights_from_row(inp.program.param_values(last))
        return PlanResult(weights, history, statements=1)

    def advance(
        self,
        engine: Engine,
        inp: PlanInput,
        state: str,
        start: int,
        count: int,
        progress: Progress | None = None,
    ) -> list[tuple[int, float]]:
        """One recursive statement from the state row, its rows inserted into the state table (the last
        one becomes the state), then the losses read back."""
        self._check(engine, count)
        engine.allow_recursion(count)
        chunk = PlanInput(inp.program, inp.data_table, inp.init, count, inp.run_name)
        anchor = exp.select(exp.Star()).from_(table(state)).where(at_iteration(start))
        query = self.query(chunk, anchor, start).where(
            exp.GT(this=col(ITERATION), expression=num(start)), copy=False
        )
        query.set("order", None)
        engine.execute(disposable(exp.insert(query, table(state), copy=False)))
        rows = engine.query(
            exp.select(col(ITERATION), col(LOSS))
            .from_(table(state))
            .where(exp.GT(this=col(ITERATION), expression=num(start)))
            .order_by(col(ITERATION))
        )
        history = [(int(i) - 1, v) for i, v in rows]
        check_history(history, count)
        keep_only(engine, state, start + count)
        if progress and history:
            progress(start + count, history[-1][1])
        return history
