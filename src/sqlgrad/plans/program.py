"""The SQL of one training iteration, shared by every plan.

One iteration is one aggregate: the parameters (one row, one DOUBLE column each) are cross-joined with
the prepared data, the forward and backward pass are column expressions staged by
:func:`sqlgrad.lowering.stage`, the gradient is a plain ``SUM`` per parameter divided by the row count,
and the optimizer's update turns the previous parameter row into the next one. The plans differ only
in how they chain iterations (one recursive statement, one statement per iteration, or the article's
nested query).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from sqlglot import exp

from ..autodiff import Graph, Node, build_graph
from ..engines.base import Capabilities
from ..lowering import Staged, leaf_columns, stage
from ..optim import Optimizer, add, div, mul
from ..spec import ModelSpec, Weights
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
    >>> from sqlgrad.spec import ModelSpec, GradientDescent, init_weights
    >>> p = TrainingProgram(ModelSpec(2, (2,), ("relu",), "softmax", 2, 1e-3), GradientDescent(2.0),
    ...                     connect().capabilities)
    >>> p.param_columns[:3]
    ['w1_0_0', 'w1_0_1', 'w1_1_0']
    >>> from sqlgrad.optim import Momentum
    >>> p = TrainingProgram(p.spec, Momentum(0.5), p.capabilities)
    >>> [e.alias for e in p.init_select(init_weights(p.spec)).expressions][12:16]
    ['b2_0', 'b2_1', 'v_w1_0_0', 'v_w1_0_1']
    """

    spec: ModelSpec
    optimizer: Optimizer
    capabilities: Capabilities

    def __post_init__(self) -> None:
        self.graph: Graph = build_graph(self.spec)
        self.param_leaves: list[Node] = self.graph.param_leaves
        self.param_columns: list[str] = [c for p in self.param_leaves for c in leaf_columns(p)]
        self.weight_columns: list[str] = [
            c for p in self.param_leaves if p.op == "weight" for c in leaf_columns(p)
        ]
        self._weight_set = set(self.weight_columns)
        self.state_columns: list[str] = self.optimizer.state_columns(self.param_columns)
        self.data_columns: list[str] = [*leaf_columns(self.graph.x), "y"]
        roots = [self.graph.loss, *(self.graph.grads[p] for p in self.param_leaves)]
        self.train_stages: Staged = stage(roots, native_tanh=self.capabilities.native_tanh)
        self.loss_stages: Staged = stage([self.graph.loss], native_tanh=self.capabilities.native_tanh)

    # --- rows of parameters -------------------------------------------------------------------------

    def init_select(self, weights: Weights) -> exp.Select:
        """``SELECT 0 AS iteration, NULL AS loss, <initial weights as DOUBLE literals>, <state: 0.0>``.

        This is the row layout of every plan: iteration, loss, the parameters, then the optimizer's
        state columns (zeros at the start)."""
        self.spec.check_weights(weights)
        values = flatten(weights)
        return exp.select(
            alias(exp.Cast(this=num(0), to=exp.DataType.build("BIGINT")), ITERATION),
            alias(to_double(exp.Null()), LOSS),
            *(
                alias(to_double(num(float(v))), c) if float(v).is_integer() else alias(num(float(v)), c)
                for c, v in zip(self.param_columns, values, strict=True)
            ),
            *(alias(to_double(num(0)), c) for c in self.state_columns),
        )

    @property
    def row_columns(self) -> list[str]:
        """Every column of a parameter row, in order: iteration, loss, parameters, optimizer state."""
        return [ITERATION, LOSS, *self.param_columns, *self.state_columns]

    def param_values(self, row: Sequence[float]) -> list[float]:
        """The parameter values of a full row (``iteration, loss, params..., state...``)."""
        return list(row[2 : 2 + len(self.param_columns)])

    def weights_from_row(self, values: list[float]) -> Weights:
        """Inverse of :func:`flatten`: a parameter row back into ``(W, b)`` pairs."""
        return unflatten(self.spec, values)

    # --- one iteration ----------------------------------------------------------------------------

    def _data_with_params(
        self, data: exp.Expression, params: exp.Expression | str, where: exp.Expression | None
    ) -> exp.Select:
        """Every data row beside the parameters: ``data CROSS JOIN params``, or, when ``params`` is the
        alias of an outer row (a LATERAL subquery), the data with that row's columns."""
        if isinstance(params, str):
            base = exp.select(
                *(col(c, "d") for c in self.data_columns), *(col(c, params) for c in self.param_columns)
            ).from_(_as(data, "d"))
        else:
            base = (
                exp.select(
                    *(col(c, "d") for c in self.data_columns), *(col(c, "q") for c in self.param_columns)
                )
                .from_(_as(data, "d"))
                .join(_as(params, "q"), join_type="cross")
            )
        return base.where(where) if where is not None else base

    def gradient_select(
        self, data: exp.Expression, params: exp.Expression | str, where: exp.Expression | None = None
    ) -> exp.Select:
        """Sum of the per-row loss, row count, and summed gradient of every parameter.

        ``params`` is a one-row relation, or the alias of an outer row for a LATERAL form."""
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
        """``0.5 * l2 * sum(W * W) + l1 * sum(|W|)`` over the weights of a parameter row, or None
        without a penalty."""
        terms: list[exp.Expression] = []
        if self.spec.l2 != 0:
            squares = total(col(c, table) * col(c, table) for c in self.weight_columns)
            terms.append(num(0.5) * num(self.spec.l2) * paren(squares))
        if self.spec.l1 != 0:
            absolutes = total(exp.Abs(this=col(c, table)) for c in self.weight_columns)
            terms.append(num(self.spec.l1) * paren(absolutes))
        return total(terms) if terms else None

    def loss_expr(self, sums: str, params: str | None) -> exp.Expression:
        """Mean data loss plus penalty, from a gradient/loss aggregate aliased ``sums``."""
        data_loss = col(LOSS_SUM, sums) / col(N_ROWS, sums)
        pen = self.penalty(params)
        return data_loss if pen is None else data_loss + pen

    def update_exprs(self, prev: str, grads: str) -> list[exp.Expression]:
        """The next row: iteration + 1, the loss at ``prev``, the updated parameters, then the updated
        optimizer state."""
        return [
            alias(col(ITERATION, prev) + num(1), ITERATION),
            alias(self.loss_expr(grads, prev), LOSS),
            *self.param_updates(prev, grads),
        ]

    def param_updates(
        self, prev: str | None, grads: str | None, t: exp.Expression | None = None
    ) -> list[exp.Expression]:
        """The optimizer's update (:meth:`sqlgrad.optim.Optimizer.updates`): the next parameters, then
        the next state. ``t`` is the 0-based update index; default the ``iteration`` of ``prev``."""
        return self.optimizer.updates(self, prev, grads, t)

    def gradient(self, column: str, prev: str | None, grads: str | None) -> exp.Expression:
        """The full gradient of one parameter: ``SUM(contribution) / n``, plus ``l2 * W + l1 * SIGN(W)``
        for weights (biases have no penalty)."""
        g = div(col(grad_column(column), grads), col(N_ROWS, grads))
        if column in self._weight_set:
            if self.spec.l2 != 0:
                g = add(g, mul(num(self.spec.l2), col(column, prev)))
            if self.spec.l1 != 0:
                g = add(g, mul(num(self.spec.l1), exp.Sign(this=col(column, prev))))
        return g

    def step_expr(self, prev: str | None) -> exp.Expression:
        """The 0-based index of the update from the row ``prev``: its iteration, as DOUBLE."""
        return to_double(col(ITERATION, prev))

    def step_select(
        self,
        data: exp.Expression,
        prev: exp.Expression,
        where: exp.Expression | None = None,
        lateral: bool = False,
    ) -> exp.Select:
        """One iteration: ``SELECT <update> FROM prev AS p CROSS JOIN (<gradient aggregate>) AS g``.

        With ``lateral`` the aggregate is a ``LATERAL`` subquery reading ``p``'s columns, so that the
        previous row is referenced once (PostgreSQL and Spark refuse a recursive reference inside a
        subquery)."""
        if lateral:
            grads = self.gradient_select(data, "p", _requalify(where, "p"))
            joined: exp.Expression = exp.Lateral(
                this=grads.subquery(), alias=exp.TableAlias(this=exp.to_identifier("g", quoted=True))
            )
        else:
            grads = self.gradient_select(data, prev.copy(), _requalify(where, "q"))
            joined = _as(grads.subquery(), "g")
        # built in place (copy=False): the update expressions are large and copying them is costly
        select = exp.Select(expressions=self.update_exprs("p", "g")).from_(_as(prev, "p"), copy=False)
        select = select.join(joined, join_type="cross", copy=False)
        return select.where(_requalify(where, "p"), copy=False) if where is not None else select

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
