"""``nested``: the article's single query. Parameters are extra columns on every data row, gradients are
window sums ``SUM(...) OVER ()``, and each iteration wraps the previous query, so K iterations nest K
times. Kept for fidelity and teaching: its depth grows with K and engines refuse it early (see
``docs/strategies.md`` for where it stops being practical).
"""

from __future__ import annotations

from sqlglot import exp

from ..engines.base import Engine
from ..errors import UsageError
from ..lowering import leaf_columns
from ..optim import GradientDescent
from ..sqlexpr import alias, col, num, to_double
from .base import Plan, PlanInput, PlanResult, Progress, check_history
from .program import LOSS_SUM, N_ROWS, grad_column


class NestedPlan(Plan):
    name = "nested"
    description = "the article's single nested query (window sums, one nesting level per iteration)"
    chunks = False

    def query(self, inp: PlanInput) -> exp.Select:
        """The single query. Gradient descent only (any schedule): the article's query carries no
        optimizer state; other optimizers raise :class:`~sqlgrad.errors.UsageError`."""
        prog = inp.program
        if not isinstance(prog.optimizer, GradientDescent) or prog.state_columns:
            raise UsageError(
                f"the nested plan (the article's query) trains with gradient descent only, not "
                f"{prog.optimizer.name!r}; use --strategy recursive or stepwise"
            )
        data_cols = prog.data_columns
        params = prog.param_columns
        init = prog.init_select(inp.init)
        # Q0: every data row with the initial parameters as extra columns
        first = init.expressions[2 : 2 + len(params)]
        q: exp.Select = exp.select(*(col(c) for c in data_cols), *first).from_(inp.data)
        st = prog.train_stages
        loss_cols: list[str] = []
        for k in range(inp.iterations):
            carried = [*data_cols, *params, *loss_cols]
            windows = [
                alias(exp.Window(this=exp.Sum(this=st.exprs(prog.graph.loss)[0])), LOSS_SUM),
                alias(to_double(exp.Window(this=exp.Count(this=exp.Star()))), N_ROWS),
            ]
            for leaf in prog.param_leaves:
                for c, e in zip(leaf_columns(leaf), st.exprs(prog.graph.grads[leaf]), strict=True):
                    windows.append(alias(exp.Window(this=exp.Sum(this=e)), grad_column(c)))
            summed = st.build(
                exp.Subquery(this=q), [*(col(c) for c in carried), *windows], passthrough=carried
            )
            loss_k = alias(prog.loss_expr("g", "g"), f"loss_{k}")
            q = exp.select(
                *(col(c, "g") for c in data_cols),
                *prog.param_updates("g", "g", to_double(num(k))),
                *(col(c, "g") for c in loss_cols),
                loss_k,
            ).from_(_named(summed, "g"), copy=False)
            loss_cols.append(f"loss_{k}")
        final = exp.select(*(col(c) for c in [*params, *loss_cols])).from_(_named(q, "trained"), copy=False)
        return final.limit(1, copy=False)

    def statements(self, inp: PlanInput) -> list[exp.Expression]:
        return [self.query(inp)]

    def run(self, engine: Engine, inp: PlanInput, progress: Progress | None = None) -> PlanResult:
        if not engine.capabilities.window_functions:
            raise UsageError(f"{engine.url}: the nested plan needs window functions")
        query = self.query(inp)
        engine.allow_nesting(_depth(query))
        row = engine.query(query)[0]
        n_params = len(inp.program.param_columns)
        history = [(k, row[n_params + k]) for k in range(inp.iterations)]
        check_history(history, inp.iterations)
        if progress:
            progress(inp.iterations, history[-1][1] if history else float("nan"))
        return PlanResult(inp.program.weights_from_row(list(row[:n_params])), history, statements=1)


def _named(query: exp.Select, name: str) -> exp.Subquery:
    """``(query) AS name`` without copying the (deep) query."""
    return exp.Subquery(this=query, alias=exp.TableAlias(this=exp.to_identifier(name)))


def _depth(query: exp.Select) -> int:
    """Nesting depth of subqueries (iteratively: the tree is too deep for recursion)."""
    depth, node = 0, query
    while True:
        from_ = node.args.get("from_")
        inner = from_.this if from_ is not None else None
        if not isinstance(inner, exp.Subquery):
            return depth
        depth, node = depth + 1, inner.this
