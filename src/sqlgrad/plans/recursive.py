"""``recursive``: the whole training as one ``WITH RECURSIVE`` statement, one parameter row per iteration.

The anchor is the initial parameter row; the recursive term is one iteration
(:meth:`~sqlgrad.plans.program.TrainingProgram.step_select`), stopped by ``iteration < K``. The engine
plans the query once and runs every iteration inside, so there is no per-iteration round trip.
"""

from __future__ import annotations

from sqlglot import exp

from ..engines.base import Engine
from ..errors import UsageError
from ..sqlexpr import col, num, table
from .base import Plan, PlanInput, PlanResult, Progress, check_history
from .program import ITERATION


class RecursivePlan(Plan):
    name = "recursive"
    description = "one WITH RECURSIVE statement for the whole training"

    def query(self, inp: PlanInput) -> exp.Select:
        prog = inp.program
        cte_name = inp.table_name("steps")
        more = exp.LT(this=col(ITERATION), expression=num(inp.iterations))
        lateral = prog.capabilities.recursive_step == "lateral"
        step = prog.step_select(inp.data, table(cte_name), more, lateral=lateral)
        body = exp.union(prog.init_select(inp.init), step, distinct=False)
        cte = exp.CTE(this=body, alias=exp.TableAlias(this=exp.to_identifier(cte_name, quoted=True)))
        query = exp.select(exp.Star()).from_(table(cte_name)).order_by(col(ITERATION))
        query.set("with_", exp.With(expressions=[cte], recursive=True))
        return query

    def statements(self, inp: PlanInput) -> list[exp.Expression]:
        return [self.query(inp)]

    def run(self, engine: Engine, inp: PlanInput, progress: Progress | None = None) -> PlanResult:
        caps = engine.capabilities
        if not (caps.recursive_cte and caps.recursive_step):
            raise UsageError(
                f"{engine.url}: this engine cannot run the recursive plan; use --strategy stepwise"
            )
        if caps.recursion_limit is not None and inp.iterations > caps.recursion_limit:
            raise UsageError(
                f"{inp.iterations} iterations exceed this engine's recursion limit of {caps.recursion_limit}"
            )
        engine.allow_recursion(inp.iterations)
        rows = engine.query(self.query(inp))
        history = [(int(r[0]) - 1, r[1]) for r in rows[1:]]
        check_history(history, inp.iterations)
        last = rows[-1]
        if progress:
            progress(inp.iterations, last[1])
        weights = inp.program.weights_from_row(inp.program.param_values(last))
        return PlanResult(weights, history, statements=1)
