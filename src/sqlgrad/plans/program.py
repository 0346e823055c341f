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
from dataclasses import dataclass, replace
from functools import cached_property
from itertools import pairwise

import numpy as np
from sqlglot import exp

from ..autodiff import Graph, Node, build_graph
from ..engines.base import Capabilities
from ..lowering import Staged, leaf_columns, stage
from ..optim import Optimizer, add, div, mul
from ..spec import ModelSpec, Weights
from ..sqlexpr import alias, col, num, paren, table, to_double, total

ITERATION = "iteration"
LOSS = "loss"
LOSS_SUM = "loss_sum"
N_ROWS = "n"
ROW_KEY = "row_key"
"""Data column numbering the training rows ``0..n-1`` (present when training in mini-batches)."""
SAMPLE_WEIGHT = "sample_weight"
"""Data column weighting each row's loss (present with class weights)."""
BLOCK = "block"
"""The block of rows a data row is gathered in, when gradients are gathered
(:class:`~sqlgrad.engines.base.GatheredGradients`)."""
BATCH_COLUMNS = ("iteration", "mult", "shift", "modulus", "lo", "hi")
"""The batch schedule table: update ``iteration`` uses the rows whose
``MOD(mult * row_key + shift, modulus)`` lies in ``[lo, hi)`` (see :mod:`sqlgrad.batches`)."""
BATCH_STATE = tuple(f"batch_{c}" for c in BATCH_COLUMNS[1:])
"""In a mini-batch run, the parameter row also carries the schedule of the update made from it (read
from the schedule table when the row is produced). The gradient aggregate then filters the data on
the row's own columns: on DuckDB a join inside the aggregate made each recursive step 50x slower."""


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
    batch_table: str | None = None
    """The batch schedule of a mini-batch run (columns :data:`BATCH_COLUMNS`); None: full batch."""
    weighted: bool = False
    """Each data row carries a :data:`SAMPLE_WEIGHT`: the loss is ``SUM(w * loss) / SUM(w)``."""
    gather: bool = False
    """Sum the gradients of the layers in :attr:`gatherable` as list dot products over blocks of rows
    (the engine's :attr:`~sqlgrad.engines.base.Capabilities.gathered_gradients`). The caller checks
    that :attr:`gathered_values` per row fit in the engine's memory (:meth:`gathering`)."""

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
        if self.batch_table is not None:
            self.data_columns.append(ROW_KEY)
        self.extra_columns: list[str] = [SAMPLE_WEIGHT] if self.weighted else []
        self.data_columns.extend(self.extra_columns)

    @cached_property
    def gatherable(self) -> dict[Node, tuple[Node, Node]]:
        """The weight leaves whose gradient ``outer(a, d)`` the engine would gather, each with its two
        vectors ``(a, d)``: the layer's inputs and output deltas (wide enough layers only)."""
        how = self.capabilities.gathered_gradients
        if how is None:
            return {}
        found: dict[Node, tuple[Node, Node]] = {}
        for leaf in self.param_leaves:
            grad = self.graph.grads[leaf]
            if leaf.op == "weight" and grad.op == "outer" and how.applies(leaf.attrs[1], leaf.attrs[2]):
                found[leaf] = (grad.inputs[0], grad.inputs[1])
        return found

    @property
    def gathered(self) -> dict[Node, tuple[Node, Node]]:
        """:attr:`gatherable` when :attr:`gather` is on, else nothing."""
        return self.gatherable if self.gather else {}

    @property
    def gathered_values(self) -> int:
        """The values per row that gathering would hold: each gathered layer's inputs and deltas."""
        return sum(a.size + d.size for a, d in self.gatherable.values())

    def gathering(self, rows: int, memory_limit: int | None) -> TrainingProgram:
        """This program, gathering its :attr:`gatherable` layers where they are and ``rows`` rows per
        update of :attr:`gathered_values` each fit in the engine's memory
        (:meth:`~sqlgrad.engines.base.GatheredGradients.fits`); otherwise this program unchanged."""
        how = self.capabilities.gathered_gradients
        if how is None or not self.gatherable or not how.fits(rows, self.gathered_values, memory_limit):
            return self
        return replace(self, gather=True)

    # The staged column expressions of the one-column-per-parameter plans are built on first use: a run
    # that ``auto`` gives to the long plan never builds them (``docs/benchmarks.md``: 1.8 s for the
    # 64-32-10 network and 3.3 s for 32-64-64-2 while the lowering copied its operands).

    @cached_property
    def train_stages(self) -> Staged:
        """The forward pass, the loss and every parameter's gradient, staged in levels (wide plans)."""
        gathered = self.gathered
        roots = [self.graph.loss, *(self.graph.grads[p] for p in self.param_leaves if p not in gathered)]
        roots += [v for pair in gathered.values() for v in pair]
        caps = self.capabilities
        return stage(roots, native_tanh=caps.native_tanh, vector_dot=caps.vector_dot)

    @cached_property
    def loss_stages(self) -> Staged:
        """The forward pass and the loss only, staged (the wide form of the loss query)."""
        caps = self.capabilities
        return stage([self.graph.loss], native_tanh=caps.native_tanh, vector_dot=caps.vector_dot)

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
            *(self._first_batch()),
        )

    def _first_batch(self) -> list[exp.Expression]:
        """``(SELECT mult FROM schedule WHERE iteration = 0) AS batch_mult, ...`` in a mini-batch run."""
        if self.batch_table is None:
            return []
        first = exp.EQ(this=col(ITERATION), expression=num(0))
        return [
            alias(exp.select(col(c)).from_(table(self.batch_table)).where(first.copy()).subquery(), name)
            for c, name in zip(BATCH_COLUMNS[1:], BATCH_STATE, strict=True)
        ]

    @property
    def row_columns(self) -> list[str]:
        """Every column of a parameter row, in order: iteration, loss, parameters, optimizer state (and
        the update's batch, :data:`BATCH_STATE`, in a mini-batch run)."""
        batch = list(BATCH_STATE) if self.batch_table is not None else []
        return [ITERATION, LOSS, *self.param_columns, *self.state_columns, *batch]

    def param_values(self, row: Sequence[float]) -> list[float]:
        """The parameter values of a full row (``iteration, loss, params..., state...``)."""
        return list(row[2 : 2 + len(self.param_columns)])

    def weights_from_row(self, values: list[float]) -> Weights:
        """Inverse of :func:`flatten`: a parameter row back into ``(W, b)`` pairs."""
        return unflatten(self.spec, values)

    # --- one iteration ----------------------------------------------------------------------------

    def _data_with_params(
        self,
        data: exp.Expression,
        params: exp.Expression | str,
        where: exp.Expression | None,
        batched: bool = True,
        stages: Staged | None = None,
    ) -> exp.Select:
        """Every data row beside the parameters: ``data CROSS JOIN params``, or, when ``params`` is the
        alias of an outer row (a LATERAL subquery), the data with that row's columns. In a mini-batch
        run only the rows of the update's batch take part (:meth:`batch_filter`).

        With ``stages``, only the parameters its levels read cross the join, and its
        :attr:`~sqlgrad.lowering.Staged.param_exprs` (a layer's weights as lists) are computed once on
        the parameter row, before the join: DuckDB's cross join pays per column and per chunk of rows
        (measured on 32-64-64-2, 200k rows: 0.7 s of a 6.5 s update with the 6,402 weights crossing)."""
        # built in place (copy=False): the select list holds a column per parameter; ``params`` and
        # ``where`` are the caller's, so copied once
        where = where.copy() if where is not None else None
        if stages is None:
            wanted, made = self.param_columns, []
        else:
            read = set(stages.base_columns)
            wanted, made = [c for c in self.param_columns if c in read], stages.param_exprs
        rows = [col(c, "d") for c in self.data_columns]
        how = self.capabilities.gathered_gradients
        if stages is not None and self.gathered and how is not None:
            # blocks of consecutive rows of the data table, by its row number
            block = exp.IntDiv(this=col(how.row_number, "d"), expression=num(how.block_rows))
            rows.append(alias(block, BLOCK))
        if isinstance(params, str):
            base = exp.select(
                *rows,
                *(col(c, params) for c in wanted),
                *(alias(_requalify(e, params), n) for n, e in made),
            ).from_(_as(data, "d"), copy=False)
        else:
            if made:  # the lists computed on the parameter row: (SELECT *, <lists> FROM params) AS q
                params = exp.Subquery(
                    this=exp.select(exp.Star(), *(alias(e, n) for n, e in made)).from_(_as(params, "q"))
                )
            base = (
                exp.select(
                    *rows,
                    *(col(c, "q") for c in [*wanted, *(n for n, _ in made)]),
                )
                .from_(_as(data, "d"), copy=False)
                .join(_as(params, "q"), join_type="cross", copy=False)
            )
        if batched and self.batch_table is not None:
            cond = self.batch_filter(params if isinstance(params, str) else "q")
            where = cond if where is None else exp.and_(where, cond, copy=False)
        return base.where(where, copy=False) if where is not None else base

    def batch_join(self, prev: str) -> tuple[exp.Expression, exp.Expression]:
        """The schedule table aliased ``s`` and the condition ``s.iteration = prev.iteration + 1``: the
        schedule of the update that the next row will make."""
        assert self.batch_table is not None
        on = exp.EQ(this=col(ITERATION, "s"), expression=col(ITERATION, prev) + num(1))
        return _as(table(self.batch_table), "s"), on

    def batch_filter(self, prev: str) -> exp.Expression:
        """``MOD(mult * d.row_key + shift, modulus)`` in ``[lo, hi)``, from the row ``prev``'s
        :data:`BATCH_STATE`: the rows of the update's batch."""
        slot = exp.Mod(
            this=exp.Paren(this=col("batch_mult", prev) * col(ROW_KEY, "d") + col("batch_shift", prev)),
            expression=col("batch_modulus", prev),
        )
        return exp.and_(
            exp.GTE(this=slot, expression=col("batch_lo", prev)),
            exp.LT(this=slot.copy(), expression=col("batch_hi", prev)),
        )

    def gradient_select(
        self, data: exp.Expression, params: exp.Expression | str, where: exp.Expression | None = None
    ) -> exp.Select:
        """Sum of the per-row loss, row count, and summed gradient of every parameter.

        ``params`` is a one-row relation, or the alias of an outer row for a LATERAL form. With
        :attr:`gathered` layers the sums are taken per block of rows first (``GROUP BY block``), the
        gathered layers' inputs and deltas as one list per column and block, and the blocks are then
        summed, each gathered weight as ``SUM(dot(list_a_i, list_d_j))``."""
        st = self.train_stages
        weight = col(SAMPLE_WEIGHT) if self.weighted else None
        sums = [
            alias(exp.Sum(this=_weighted(st.exprs(self.graph.loss)[0], weight)), LOSS_SUM),
            alias(self._count(weight), N_ROWS),
        ]
        gathered = self.gathered
        for leaf in self.param_leaves:
            if leaf not in gathered:
                for c, e in zip(leaf_columns(leaf), st.exprs(self.graph.grads[leaf]), strict=True):
                    sums.append(alias(exp.Sum(this=_weighted(e, weight)), grad_column(c)))
        base = self._data_with_params(data, params, where, stages=st)
        if not gathered:
            return st.build(base, sums, passthrough=self.extra_columns, params_in_base=True)
        how = self.capabilities.gathered_gradients
        assert how is not None
        totals: list[exp.Expression] = [alias(exp.Sum(this=col(s.alias)), s.alias) for s in sums]
        lists: dict[str, exp.Expression] = {}
        for leaf, (a, d) in gathered.items():
            a_lists = [f"{a.name}_list_{i}" for i in range(a.size)]
            d_lists = [f"{d.name}_list_{j}" for j in range(d.size)]
            for name, e in zip(a_lists, st.exprs(a), strict=True):
                lists[name] = exp.Anonymous(this=how.gather, expressions=[e])
            for name, e in zip(d_lists, st.exprs(d), strict=True):  # the row weight goes with the deltas
                lists[name] = exp.Anonymous(this=how.gather, expressions=[_weighted(e, weight)])
            columns = iter(leaf_columns(leaf))  # row-major: input i, unit j
            for ai in a_lists:
                for dj in d_lists:
                    dot = exp.Anonymous(this=how.dot, expressions=[col(ai), col(dj)])
                    totals.append(alias(exp.Sum(this=dot), grad_column(next(columns))))
        sums += [alias(e, name) for name, e in lists.items()]
        blocks = st.build(base, sums, passthrough=[*self.extra_columns, BLOCK], params_in_base=True)
        blocks = blocks.group_by(col(BLOCK), copy=False)
        return exp.select(*totals).from_(_as(blocks.subquery(copy=False), "b", copy=False), copy=False)

    def _count(self, weight: exp.Expression | None) -> exp.Expression:
        """The row count as DOUBLE, or the sum of the sample weights."""
        if weight is None:
            return to_double(exp.Count(this=exp.Star()))
        return exp.Sum(this=weight.copy())

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
            *(
                alias(col(c, "s"), name)
                for c, name in zip(BATCH_COLUMNS[1:], BATCH_STATE, strict=True)
                if self.batch_table is not None
            ),
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
                this=grads.subquery(copy=False),
                alias=exp.TableAlias(this=exp.to_identifier("g", quoted=True)),
            )
        else:
            grads = self.gradient_select(data, prev, _requalify(where, "q"))
            joined = _as(grads.subquery(copy=False), "g", copy=False)
        # built in place (copy=False): the update expressions are large and copying them is costly
        select = exp.Select(expressions=self.update_exprs("p", "g")).from_(_as(prev, "p"), copy=False)
        select = select.join(joined, join_type="cross", copy=False)
        if self.batch_table is not None:
            schedule, on = self.batch_join("p")
            select = select.join(schedule, on=on, copy=False)
        return select.where(_requalify(where, "p"), copy=False) if where is not None else select

    def loss_select(self, data: exp.Expression, params: exp.Expression) -> exp.Select:
        """The loss (with penalty) at a parameter row over every row of ``data``, forward pass only."""
        st = self.loss_stages
        weight = col(SAMPLE_WEIGHT) if self.weighted else None
        inner = st.build(
            self._data_with_params(data, params, None, batched=False),
            [
                alias(exp.Sum(this=_weighted(st.exprs(self.graph.loss)[0], weight)), LOSS_SUM),
                alias(self._count(weight), N_ROWS),
            ],
            passthrough=self.extra_columns,
        )
        return (
            exp.select(alias(self.loss_expr("g", "p"), LOSS))
            .from_(_as(params, "p"), copy=False)
            .join(_as(inner.subquery(copy=False), "g", copy=False), join_type="cross", copy=False)
        )


def _weighted(e: exp.Expression, weight: exp.Expression | None) -> exp.Expression:
    return e if weight is None else mul(weight.copy(), paren(e))


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


def _as(rel: exp.Expression, name: str, copy: bool = True) -> exp.Expression:
    """``rel`` (a table, a subquery or a select, made a subquery) aliased ``name``: a copy, or ``rel``
    itself when ``copy`` is False (a relation built for this one use: copying a gradient aggregate of a
    wide model costs seconds)."""
    if copy:
        rel = rel.copy()
    if isinstance(rel, exp.Select):
        rel = rel.subquery(copy=False)
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
