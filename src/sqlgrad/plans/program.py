"""The SQL of one training iteration, shared by every plan.

One iteration is one aggregate: the parameters (one row, one DOUBLE column each) are cross-joined with
the prepared data, the forward and backward pass are column expressions staged by
:func:`sqlgrad.lowering.stage`, the gradient is a plain ``SUM`` per parameter divided by the row count,
and the optimizer's update turns the previous parameter row into the next one. The plans differ only
in how they chain iterations (one recursive statement, one statement per iteration, or the article's
nested query).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from sqlglot import exp

from ..autodiff import Graph, Node, build_graph
from ..engines.base import Capabilities
from ..lowering import Staged, leaf_columns, stage
from ..spec import GradientDescent, ModelSpec, Weights
from ..sqlexpr import alias, col, num, paren, to_double, total

ITERATION = "iteration"
LOSS = "loss"
LOSS_SUM = "loss_sum"
N_ROWS = "n"


def grad_column(param_column: str) -> str:
    return f"d_{param_column}"


@dataclass
class TrainingProgram:
    """Everything a plan needs to write the statements of a training run.

    >>> from sqlgrad.engines import connect
    >>> from sqlgrad.spec import ModelSpec, GradientDescent
    >>> p = TrainingProgram(ModelSpec(2, (2,), ("relu",), "softmax", 2, 1e-3), GradientDescent(2.0),
    ...                     connect().capabilities)
    >>> p.param_columns[:3]
    ['w1_0_0', 'w1_0_1', 'w1_1_0']
    """

    spec: ModelSpec
    optimizer: GradientDescent
    capabilities: Capabilities

    def __post_init__(self) -> None:
        self.graph: Graph = build_graph(self.spec)
        self.param_leaves: list[Node] = self.graph.param_leaves
        self.param_columns: list[str] = [c for p in self.param_leaves for c in leaf_columns(p)]
        self.weight_columns: list[str] = [
            c for p in self.param_leaves if p.op == "weight" for c in leaf_columns(p)
        ]
        self.data_columns: list[str] = [*leaf_columns(self.graph.x), "y"]
        roots = [self.graph.loss, *(self.graph.grads[p] for p in self.param_leaves)]
        self.train_stages: Staged = stage(roots, native_tanh=self.capabilities.native_tanh)
        self.loss_stages: Staged = stage([self.graph.loss], native_tanh=self.capabilities.native_tanh)

    # --- rows of parameters -------------------------------------------------------------------------

    def init_select(self, weights: Weights) -> exp.Select:
        """``SELECT 0 AS iteration, NULL AS loss, <initial weights as DOUBLE literals>``."""
        self.spec.check_weights(weights)
        values = flatten(weights)
        return exp.select(
            alias(exp.Cast(this=num(0), to=exp.DataType.build("BIGINT")), ITERATION),
            alias(to_double(exp.Null()), LOSS),
            *(
                alias(to_double(num(float(v))), c) if float(v).is_integer() else alias(num(float(v)), c)
                for c, v in zip(self.param_columns, values, strict=True)
            ),
        )

    def weights_from_row(self, values: list[float]) -> Weights:
        """Inverse of :func:`flatten`: a parameter row back into ``(W, b)`` pairs."""
        return unflatten(self.spec, values)

    # --- one iteration ----------------------------------------------------------------------------

    def _data_with_params(
        self, data: exp.Expression, params: exp.Expression, where: exp.Expression | None
    ) -> exp.Select:
        base = (
            exp.select(*(col(c, "d") for c in self.data_columns), *(col(c, "q") for c in self.param_columns))
            .from_(_as(data, "d"))
            .join(_as(params, "q"), join_type="cross")
        )
        return base.where(where) if where is not None else base

    def gradient_select(
        self, data: exp.Expression, params: exp.Expression, where: exp.Expression | None = None
    ) -> exp.Select:
        """Sum of the per-row loss, row count, and summed gradient of every parameter."""
        st = self.train_stages
        sums = [
            alias(exp.Sum(this=st.exprs(self.graph.loss)[0]), LOSS_SUM),
            alias(to_double(exp.Count(this=exp.Star())), N_ROWS),
        ]
        for leaf in self.param_leaves:
            for c, e in zip(leaf_columns(leaf), st.exprs(self.graph.grads[leaf]), strict=True):
                sums.append(alias(exp.Sum(this=e), grad_column(c)))
        return st.build(self._data_with_params(data, params, where), sums)

    def penalty(self, table: str | None) -> exp.Expression | None:
        """``0.5 * l2 * sum(W * W)`` over the weights of a parameter row, or None without a penalty."""
        if self.spec.l2 == 0:
            return None
        squares = total(col(c, table) * col(c, table) for c in self.weight_columns)
        return num(0.5) * num(self.spec.l2) * paren(squares)

    def loss_expr(self, sums: str, params: str | None) -> exp.Expression:
        """Mean data loss plus penalty, from a gradient/loss aggregate aliased ``sums``."""
        data_loss = col(LOSS_SUM, sums) / col(N_ROWS, sums)
        pen = self.penalty(params)
        return data_loss if pen is None else data_loss + pen

    def update_exprs(self, prev: str, grads: str) -> list[exp.Expression]:
        """The next parameter row: iteration + 1, the loss at ``prev``, and the updated parameters."""
        return [
            alias(col(ITERATION, prev) + num(1), ITERATION),
            alias(self.loss_expr(grads, prev), LOSS),
            *self.param_updates(prev, grads),
        ]

    def param_updates(self, prev: str | None, grads: str | None) -> list[exp.Expression]:
        """``p - lr * (SUM(grad)/n + l2 * p)`` for weights, ``p - lr * SUM(grad)/n`` for biases."""
        lr, l2 = self.optimizer.lr, self.spec.l2
        weights = set(self.weight_columns)
        out: list[exp.Expression] = []
        for c in self.param_columns:
            g = col(grad_column(c), grads) / col(N_ROWS, grads)
            if c in weights and l2 != 0:
                g = g + num(l2) * col(c, prev)
            out.append(alias(col(c, prev) - num(lr) * paren(g), c))
        return out

    def step_select(
        self, data: exp.Expression, prev: exp.Expression, where: exp.Expression | None = None
    ) -> exp.Select:
        """One iteration: ``SELECT <update> FROM prev AS p CROSS JOIN (<gradient aggregate>) AS g``."""
        grads = self.gradient_select(data, prev.copy(), _requalify(where, "q"))
        select = exp.select(*self.update_exprs("p", "g")).from_(_as(prev, "p"))
        select = select.join(_as(grads.subquery(), "g"), join_type="cross")
        return select.where(_requalify(where, "p")) if where is not None else select

    def loss_select(self, data: exp.Expression, params: exp.Expression) -> exp.Select:
        """The loss (with penalty) at a parameter row, forward pass only."""
        st = self.loss_stages
        inner = st.build(
            self._data_with_params(data, params.copy(), None),
            [
                alias(exp.Sum(this=st.exprs(self.graph.loss)[0]), LOSS_SUM),
                alias(to_double(exp.Count(this=exp.Star())), N_ROWS),
            ],
        )
        return (
            exp.select(alias(self.loss_expr("g", "p"), LOSS))
            .from_(_as(params, "p"))
            .join(_as(inner.subquery(), "g"), join_type="cross")
        )


def flatten(weights: Weights) -> list[float]:
    """Parameters in column order: per layer, W row-major then b."""
    out: list[float] = []
    for w, b in weights:
        out.extend(float(v) for v in np.asarray(w, dtype=float).ravel())
        out.extend(float(v) for v in np.asarray(b, dtype=float).ravel())
    return out


def unflatten(spec: ModelSpec, values: list[float]) -> Weights:
    sizes = spec.layer_sizes
    arr = np.asarray(values, dtype=float)
    weights: Weights = []
    pos = 0
    for fan_in, fan_out in pairwise(sizes):
        w = arr[pos : pos + fan_in * fan_out].reshape(fan_in, fan_out)
        pos += fan_in * fan_out
        b = arr[pos : pos + fan_out].copy()
        pos += fan_out
        weights.append((w.copy(), b))
    return weights


def _as(rel: exp.Expression, name: str) -> exp.Expression:
    rel = rel.copy()
    if isinstance(rel, exp.Select):
        rel = rel.subquery()
    rel.set("alias", exp.TableAlias(this=exp.to_identifier(name, quoted=True)))
    return rel


def _requalify(cond: exp.Expression | None, table: str) -> exp.Expression | None:
    """A copy of a condition on the previous row with every column qualified by ``table``."""
    if cond is None:
        return None
    cond = cond.copy()
    for c in cond.find_all(exp.Column):
        c.set("table", exp.to_identifier(table, quoted=True))
    return cond
