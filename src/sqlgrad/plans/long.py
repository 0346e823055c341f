"""``long``: parameters as rows, so that a network of any width trains on every engine.

The other plans keep one DOUBLE column per parameter (and per optimizer state entry, and one ``SUM`` per
gradient), which PostgreSQL (1,664 select-list entries, 1,600 table columns), SQLite (2,000 columns) and
MariaDB (1,000 table columns here) refuse for a 64-32-10 classifier. Here no statement has more than a
dozen columns:

- the parameters and the optimizer's state are rows of the run's state table,
  ``(iteration, loss, layer, i, j, w, <state>)``: ``w`` is the weight from input ``i`` to unit ``j`` of
  ``layer`` (1-based), and a bias is the row ``i = -1`` (:data:`BIAS_INPUT`); the state columns are the
  optimizer's prefixes (``v`` for momentum, ``m, v`` for Adam);
- the prepared data becomes, once per run (:meth:`LongPlan.prepare`), ``x(rid, j, v)`` (feature ``j``
  of row ``rid``: the ``row_key`` of a mini-batch run, else a ``ROW_NUMBER()``), ``y(rid, v)`` and, with
  class weights, ``sw(rid, v)``;
- one update is one ``CREATE TABLE <state>_next AS SELECT``: the autodiff graph lowered to relations
  (:mod:`sqlgrad.relational`: forward and backward passes as JOIN + GROUP BY per layer) over the rows of
  the update's batch (the schedule row of the state's iteration), the gradient ``SUM(...) GROUP BY
  (layer, i, j)`` divided by the row count (or the sum of the sample weights), and the optimizer's
  update (:meth:`sqlgrad.optim.Optimizer.scalar_update`, the same expressions as the wide plans) on
  every parameter row, LEFT JOINed to its gradient; each new row also carries the loss at the weights it
  was computed from, which is the history. The new table then replaces the state table, in the same
  transaction (see :meth:`LongPlan._swap` for why not ``INSERT`` + ``DELETE``).

The plan is chunked like the wide ones (:mod:`sqlgrad.plans.driver`: validation, early stopping,
checkpoints and resume copy its rows by ``iteration = k``). Engines whose tables take no DELETE (Spark,
``Capabilities.mutable_tables``) append every iteration's rows to the state table instead; the update
reads the latest by ``iteration = (SELECT MAX(iteration) ...)``, so its text carries no iteration number.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from sqlglot import exp

from ..autodiff import Graph, Node
from ..data import create_temp_table
from ..engines.base import Capabilities, Engine
from ..errors import TrainingError
from ..lowering import leaf_columns, stage
from ..optim import add, div, mul
from ..relational import RID, Lowered, V, lower
from ..spec import Weights
from ..sqlexpr import alias, col, disposable, ident, num, paren, table, to_double, total
from .base import Plan, PlanInput, Progress, check_history
from .program import ITERATION, LOSS, LOSS_SUM, N_ROWS, ROW_KEY, SAMPLE_WEIGHT, TrainingProgram

BIAS_INPUT = -1
"""The input index ``i`` of a bias row: a bias is the weight of an input that is always 1."""

LAYER, INP, J, W, D = "layer", "i", "j", "w", "d"
"""Columns of the parameter table (``layer, i, j, w``) and of the gradient sums (``d``)."""

INSERT_ROWS = 500
"""Parameter rows per ``INSERT ... VALUES`` statement when the table is filled."""

UNION_BRANCHES = 100
"""Features per ``INSERT ... SELECT`` when the data is turned long (SQLite allows 500 compound terms)."""


def param_columns(program: TrainingProgram) -> list[str]:
    """Columns of the parameter table: iteration, loss, layer, i, j, w, then the optimizer's state.

    >>> from sqlgrad.engines.base import Capabilities
    >>> from sqlgrad.optim import Adam
    >>> from sqlgrad.spec import ModelSpec
    >>> param_columns(TrainingProgram(ModelSpec(2, (), (), "sigmoid", 1), Adam(0.1), Capabilities("duckdb")))
    ['iteration', 'loss', 'layer', 'i', 'j', 'w', 'm', 'v']
    """
    return [ITERATION, LOSS, LAYER, INP, J, W, *program.optimizer.state]


def param_rows(program: TrainingProgram, weights: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[tuple]:
    """``(layer, i, j, value)`` for every weight and bias (biases at ``i = -1``), in a fixed order.

    >>> param_rows(None, [(np.array([[1.0, 2.0]]), np.array([0.5, 0.0]))])
    [(1, 0, 0, 1.0), (1, 0, 1, 2.0), (1, -1, 0, 0.5), (1, -1, 1, 0.0)]
    """
    rows: list[tuple] = []
    for layer, (w, b) in enumerate(weights, start=1):
        w = np.asarray(w, dtype=float)
        rows.extend((layer, i, j, float(w[i, j])) for i in range(w.shape[0]) for j in range(w.shape[1]))
        rows.extend((layer, BIAS_INPUT, j, float(v)) for j, v in enumerate(np.asarray(b, dtype=float)))
    return rows


def weights_from_rows(program: TrainingProgram, rows: Sequence[tuple]) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(layer, i, j, w)`` rows back into ``(W, b)`` pairs; a missing or repeated row is an error."""
    sizes = program.spec.layer_sizes
    weights = [(np.full((a, b), np.nan), np.full(b, np.nan)) for a, b in pairwise(sizes)]
    for layer, i, j, w in rows:
        wm, bv = weights[int(layer) - 1]
        target, index = (bv, int(j)) if int(i) == BIAS_INPUT else (wm, (int(i), int(j)))
        if not np.isnan(target[index]):
            raise TrainingError(f"parameter ({layer}, {i}, {j}) came back twice")
        target[index] = float(w)
    for wm, bv in weights:
        if np.isnan(wm).any() or np.isnan(bv).any():
            raise TrainingError("the parameter table lost rows (or holds NaN); no model written")
    return weights


class LongPlan(Plan):
    name = "long"
    description = "parameters as rows (layer, i, j); JOIN + GROUP BY per layer: any width on every engine"

    # --- tables ---------------------------------------------------------------------------------

    def _names(self, inp: PlanInput) -> dict[str, str]:
        """The run's data tables (``rows``, ``x``, ``y``, ``sw``: sample weights) and ``init`` (the
        parameter rows of iteration 0), named after the run."""
        return {k: inp.table_name(f"long_{k}") for k in ("rows", "x", "y", "sw", "init")}

    def setup(self, inp: PlanInput) -> list[exp.Expression]:
        """Turn the prepared rows into ``x(rid, j, v)``, ``y(rid, v)`` (and ``sw(rid, v)``, the sample
        weights of a weighted run), and write the initial parameter rows. The row key ``rid`` is the
        prepared table's ``row_key`` in a mini-batch run (the batch rule reads it), else a
        ``ROW_NUMBER()``."""
        prog = inp.program
        names = self._names(inp)
        features = leaf_columns(prog.graph.x)
        extra = [SAMPLE_WEIGHT] if prog.weighted else []
        out: list[exp.Expression] = []
        if prog.batch_table is not None:
            source, rid = inp.data, col(ROW_KEY)
        else:
            # ordered by every column: Spark requires an ordered window, and equal rows are
            # interchangeable
            order = exp.Order(expressions=[exp.Ordered(this=col(c)) for c in [*features, "y", *extra]])
            numbered = exp.select(
                alias(exp.Window(this=exp.RowNumber(), order=order), RID),
                *(col(c) for c in [*features, "y", *extra]),
            ).from_(inp.data)
            out.append(create_temp_table(names["rows"], numbered))
            # the numbered rows stay until the end of the run: on Spark the run's tables are cached
            # views, and ``x`` and ``y`` are defined over this one
            source, rid = table(names["rows"]), col(RID)
        for start in range(0, len(features), UNION_BRANCHES):
            chunk = [
                exp.select(
                    alias(rid.copy(), RID), alias(num(j), J), alias(to_double(col(features[j])), V)
                ).from_(source.copy())
                for j in range(start, min(start + UNION_BRANCHES, len(features)))
            ]
            union = chunk[0]
            for part in chunk[1:]:
                union = exp.union(union, part, distinct=False, copy=False)
            if start == 0:
                out.append(create_temp_table(names["x"], union))
            else:
                out.append(_insert(union, names["x"], [RID, J, V]))
        out.append(
            create_temp_table(
                names["y"], exp.select(alias(rid.copy(), RID), alias(col("y"), V)).from_(source.copy())
            )
        )
        kept = ["x", "y"]
        if prog.weighted:
            weights = exp.select(alias(rid.copy(), RID), alias(to_double(col(SAMPLE_WEIGHT)), V))
            out.append(create_temp_table(names["sw"], weights.from_(source.copy())))
            kept.append("sw")
        out.extend(self._create_params(inp))
        if prog.capabilities.analyze_tables:
            out.extend(exp.Analyze(tables=[table(names[k])]) for k in [*kept, "init"])
        return out

    def _create_params(self, inp: PlanInput) -> list[exp.Expression]:
        prog = inp.program
        caps = prog.capabilities
        name = self._names(inp)["init"]
        ints = {ITERATION, LAYER, INP, J}
        schema = exp.Schema(
            this=table(name),
            expressions=[
                exp.ColumnDef(this=ident(c), kind=exp.DataType.build("BIGINT" if c in ints else "DOUBLE"))
                for c in param_columns(prog)
            ],
        )
        props = exp.Properties(expressions=[exp.TemporaryProperty()]) if caps.mutable_tables else None
        out: list[exp.Expression] = [exp.Create(this=schema, kind="TABLE", properties=props)]
        prog.spec.check_weights(inp.init)
        rows = param_rows(prog, inp.init)
        for start in range(0, len(rows), INSERT_ROWS):
            values = [
                exp.Tuple(
                    expressions=[
                        num(0),
                        exp.Null(),
                        num(layer),
                        num(i),
                        num(j),
                        num(w),
                        *(num(0) for _ in prog.optimizer.state),
                    ]
                )
                for layer, i, j, w in rows[start : start + INSERT_ROWS]
            ]
            out.append(_insert(exp.Values(expressions=values), name, param_columns(prog)))
        return out

    def prepare(self, engine: Engine, inp: PlanInput) -> None:
        """Write the run's data and initial parameter tables (once per run, not per chunk)."""
        try:
            for st in self.setup(inp):
                engine.execute(st)
        except BaseException:
            self.release(engine, inp)
            raise

    def release(self, engine: Engine, inp: PlanInput) -> None:
        """Drop the tables :meth:`prepare` wrote (those that exist), and a next-rows table left by an
        update that failed between its statements where DDL does not roll back (MariaDB)."""
        for name in [*self._names(inp).values(), f"{inp.table_name('state')}_next"]:
            with contextlib.suppress(Exception):
                engine.drop_work_table(name)

    teardown = release

    def first_state(self, inp: PlanInput) -> exp.Expression:
        """The parameter rows of iteration 0 (initial weights, zero optimizer state), one per weight
        and bias, read from the table :meth:`prepare` filled."""
        return exp.select(*(col(c) for c in param_columns(inp.program))).from_(
            table(self._names(inp)["init"])
        )

    def weights_at(self, engine: Engine, inp: PlanInput, name: str, iteration: int) -> Weights:
        rows = engine.query(
            exp.select(col(LAYER), col(INP), col(J), col(W)).from_(table(name)).where(_at(iteration))
        )
        return weights_from_rows(inp.program, rows)

    # --- one iteration ----------------------------------------------------------------------------

    def step_insert(self, inp: PlanInput, state: str | None = None) -> exp.Insert:
        """``INSERT INTO state <step_query>``: the update where tables take no DELETE (Spark)."""
        state = state or inp.table_name("state")
        return _insert(self.step_query(inp, state), state, param_columns(inp.program))

    def step_query(self, inp: PlanInput, state: str | None = None) -> exp.Query:
        """The next parameter rows: ``SELECT <next rows> FROM state ...``.

        It reads the rows of the latest iteration of ``state``, ``iteration = (SELECT MAX(iteration)
        FROM state)`` (the table holds only those where tables take DELETE), and carries no literal of
        the iteration: the same text serves every update. In a mini-batch run the schedule row of that
        iteration picks the batch's rows; the loss and the gradient are their (weighted) mean."""
        prog = inp.program
        graph: Graph = prog.graph
        names = self._names(inp)
        state = state or inp.table_name("state")
        params = table(state)

        def current(qualifier: str | None = None) -> exp.Expression:
            latest = exp.select(exp.Max(this=col(ITERATION))).from_(table(state)).subquery()
            return exp.EQ(this=col(ITERATION, qualifier), expression=latest)

        def param_rel(node: Node) -> exp.Select:
            layer = node.attrs[0]
            is_bias = node.op == "bias"
            conds = [
                exp.EQ(this=col(LAYER), expression=num(layer)),
                exp.EQ(this=col(INP), expression=num(BIAS_INPUT))
                if is_bias
                else exp.GTE(this=col(INP), expression=num(0)),
                current(),
            ]
            keys = [col(J)] if is_bias else [col(INP), col(J)]
            return exp.select(*keys, alias(col(W), V)).from_(params.copy()).where(exp.and_(*conds))

        ctes: list[tuple[str, exp.Select]] = []
        data = {"x": table(names["x"]), "y": table(names["y"]), "sw": table(names["sw"])}
        if prog.batch_table is not None:
            ctes.extend(self._batch_ctes(inp, state))
            for k in [*data]:
                data[k] = table(f"batch_{k}")
        leaves: dict[Node, exp.Expression] = {graph.x: data["x"], graph.y: data["y"]}
        for w, b in graph.params:
            leaves[w], leaves[b] = param_rel(w), param_rel(b)
        grad_nodes = [graph.grads[p] for p in prog.param_leaves]
        low: Lowered = lower([graph.loss, *grad_nodes], leaves, native_tanh=prog.capabilities.native_tanh)
        if prog.weighted:
            low = low.weighted(grad_nodes, data["sw"])
        ctes.extend(low.ctes)
        # gradient sums, one CTE per parameter, then all of them keyed by (layer, i, j)
        branches: list[exp.Select] = []
        for p in prog.param_leaves:
            layer = p.attrs[0]
            sums = low.gradient_sum(graph.grads[p])
            cte = f"d{p.name}"
            ctes.append((cte, sums))
            i_col = alias(num(BIAS_INPUT), INP) if p.op == "bias" else col(INP)
            branches.append(exp.select(alias(num(layer), LAYER), i_col, col(J), col(D)).from_(table(cte)))
        grads = branches[0]
        for b in branches[1:]:
            grads = exp.union(grads, b, distinct=False, copy=False)
        ctes.append(("grads", grads))
        loss_rel = _aliased(low.relations[graph.loss], "l")
        if prog.weighted:  # SUM(w * loss) / SUM(w), as the wide program
            totals = (
                exp.select(
                    alias(low.sum(mul(col(V, "sw"), col(V, "l")), col(RID, "l")), LOSS_SUM),
                    alias(low.sum(col(V, "sw"), col(RID, "l")), N_ROWS),
                )
                .from_(loss_rel)
                .join(_aliased(data["sw"], "sw"), on=exp.EQ(this=col(RID, "sw"), expression=col(RID, "l")))
            )
        else:
            totals = exp.select(
                alias(low.sum(col(V, "l"), col(RID, "l")), LOSS_SUM),
                alias(to_double(exp.Count(this=exp.Star())), N_ROWS),
            ).from_(loss_rel)
        ctes.append(("totals", totals))
        penalty = self._penalty(prog, params, current(), low)
        if penalty is not None:
            ctes.append(("penalty", penalty))
        data_loss = col(LOSS_SUM, "t") / col(N_ROWS, "t")
        loss = data_loss if penalty is None else data_loss + col(V, "pen")

        def select(weights: bool | None) -> exp.Select:
            """Next rows for weights (True), biases (False) or every parameter (None: no penalty)."""
            t = to_double(col(ITERATION, "p"))

            def grad() -> exp.Expression:
                g = div(exp.Coalesce(this=col(D, "g"), expressions=[num(0)]), col(N_ROWS, "t"))
                if weights:
                    if prog.spec.l2 != 0:
                        g = add(g, mul(num(prog.spec.l2), col(W, "p")))
                    if prog.spec.l1 != 0:
                        g = add(g, mul(num(prog.spec.l1), exp.Sign(this=col(W, "p"))))
                return g

            opt = prog.optimizer
            new_w, new_state = opt.scalar_update(
                col(W, "p"), grad, [col(s, "p") for s in opt.state], opt.lr_expr(t.copy()), t.copy()
            )
            q = exp.select(
                alias(col(ITERATION, "p") + num(1), ITERATION),
                alias(loss.copy(), LOSS),
                col(LAYER, "p"),
                col(INP, "p"),
                col(J, "p"),
                alias(new_w, W),
                *(alias(e, s) for s, e in zip(opt.state, new_state, strict=True)),
            ).from_(_aliased(params, "p"))
            q = q.join(_aliased(table("totals"), "t"), join_type="cross")
            if penalty is not None:
                q = q.join(_aliased(table("penalty"), "pen"), join_type="cross")
            on = exp.and_(*(exp.EQ(this=col(k, "g"), expression=col(k, "p")) for k in (LAYER, INP, J)))
            q = q.join(_aliased(table("grads"), "g"), on=on, join_type="left")
            conds = [current("p")]
            if weights is not None:
                conds.append(
                    exp.GTE(this=col(INP, "p"), expression=num(0))
                    if weights
                    else exp.EQ(this=col(INP, "p"), expression=num(BIAS_INPUT))
                )
            return q.where(exp.and_(*conds))

        body: exp.Query = (
            select(None) if penalty is None else exp.union(select(True), select(False), distinct=False)
        )
        return Lowered(ctes, low.relations).with_(body)

    def _batch_ctes(self, inp: PlanInput, state: str) -> list[tuple[str, exp.Select]]:
        """The rows of the update's batch: ``batch_rows(rid)``, the rows whose ``MOD(mult * rid + shift,
        modulus)`` lies in ``[lo, hi)`` of the schedule row of the state's iteration (the rule of
        :mod:`sqlgrad.batches`, ``rid`` being the row key), and the data relations restricted to them:
        ``batch_x``, ``batch_y`` (and ``batch_sw``)."""
        prog = inp.program
        assert prog.batch_table is not None
        names = self._names(inp)
        latest = exp.select(exp.Max(this=col(ITERATION))).from_(table(state)).subquery()
        sched = (
            exp.select(*(col(c) for c in ("mult", "shift", "modulus", "lo", "hi")))
            .from_(table(prog.batch_table))
            .where(exp.EQ(this=col(ITERATION), expression=latest))
        )
        slot = exp.Mod(
            this=exp.Paren(this=col("mult", "s") * col(RID, "r") + col("shift", "s")),
            expression=col("modulus", "s"),
        )
        rows = (
            exp.select(col(RID, "r"))
            .from_(_aliased(table(names["y"]), "r"))
            .join(_aliased(table("batch_sched"), "s"), join_type="cross")
            .where(
                exp.and_(
                    exp.GTE(this=slot, expression=col("lo", "s")),
                    exp.LT(this=slot.copy(), expression=col("hi", "s")),
                )
            )
        )
        out: list[tuple[str, exp.Select]] = [("batch_sched", sched), ("batch_rows", rows)]
        for k, cols in (("x", [RID, J, V]), ("y", [RID, V]), ("sw", [RID, V])):
            if k == "sw" and not prog.weighted:
                continue
            restricted = (
                exp.select(*(col(c, "d") for c in cols))
                .from_(_aliased(table(names[k]), "d"))
                .join(
                    _aliased(table("batch_rows"), "b"),
                    on=exp.EQ(this=col(RID, "b"), expression=col(RID, "d")),
                )
            )
            out.append((f"batch_{k}", restricted))
        return out

    @staticmethod
    def _penalty(
        prog: TrainingProgram, params: exp.Table, current: exp.Expression, low: Lowered
    ) -> exp.Select | None:
        """``0.5 * l2 * SUM(w * w) + l1 * SUM(|w|)`` over the weight rows (not biases), or None."""
        terms: list[exp.Expression] = []

        def key() -> list[exp.Expression]:  # unique per row of one iteration
            return [col(LAYER), col(INP), col(J)]

        if prog.spec.l2 != 0:
            terms.append(num(0.5) * num(prog.spec.l2) * paren(low.sum(col(W) * col(W), key())))
        if prog.spec.l1 != 0:
            terms.append(num(prog.spec.l1) * paren(low.sum(exp.Abs(this=col(W)), key())))
        if not terms:
            return None
        cond = exp.and_(exp.GTE(this=col(INP), expression=num(0)), current)
        return exp.select(alias(total(terms), V)).from_(params.copy()).where(cond)

    def step(self, inp: PlanInput, state: str) -> list[exp.Expression]:
        """The statements of one update (the same for every update). Where tables take DELETE, the
        next rows go to a new table that then replaces the state table (:meth:`_swap`); elsewhere
        (Spark) they are appended to it."""
        caps = inp.program.capabilities
        if not caps.mutable_tables:
            return [disposable(self.step_insert(inp, state))]
        return [disposable(st) for st in self._swap(caps, inp, state)]

    def _swap(self, caps: Capabilities, inp: PlanInput, state: str) -> list[exp.Expression]:
        """``CREATE TEMPORARY TABLE <state>_next AS <step_query>``, ``DROP TABLE <state>``, ``ALTER
        TABLE <state>_next RENAME TO <state>`` (and ``ANALYZE`` where the planner needs statistics).

        Not ``INSERT`` + ``DELETE`` in place: DuckDB counts deleted rows in its estimates, so a state
        table that has seen 100 updates plans its joins differently from one created from a checkpoint
        (measured: a resumed run's plan differed from the uninterrupted one's, and so did the weights in
        the last bits). A fresh table of exactly one iteration's rows gives every update the same
        statistics, whatever the run's history."""
        nxt = f"{state}_next"
        props = exp.Properties(expressions=[exp.TemporaryProperty()]) if caps.temp_tables else None
        out: list[exp.Expression] = [
            exp.Create(
                this=table(nxt), kind="TABLE", expression=self.step_query(inp, state), properties=props
            ),
            exp.Drop(tables=[table(state)], kind="TABLE", exists=True),
            exp.Alter(this=table(nxt), kind="TABLE", actions=[exp.AlterRename(this=table(state))]),
        ]
        if caps.analyze_tables:
            out.append(exp.Analyze(tables=[table(state)]))
        return out

    def statements(self, inp: PlanInput) -> list[exp.Expression]:
        caps = inp.program.capabilities
        state = inp.table_name("state")
        props = exp.Properties(expressions=[exp.TemporaryProperty()])
        temporary = caps.temp_tables and caps.mutable_tables
        create = exp.Create(
            this=table(state),
            kind="TABLE",
            expression=self.first_state(inp),
            properties=props if temporary else None,
        )
        return [*self.setup(inp), create, *self.step(inp, state)]

    # --- running ----------------------------------------------------------------------------------

    def advance(
        self,
        engine: Engine,
        inp: PlanInput,
        state: str,
        start: int,
        count: int,
        progress: Progress | None = None,
    ) -> list[tuple[int, float]]:
        """The statements of :meth:`step` per update (rendered once: they carry no iteration number),
        in one transaction; the loss each new row carries is the history."""
        caps = engine.capabilities
        if caps.analyze_tables:  # the first state table is the driver's: give the planner its statistics
            engine.execute(exp.Analyze(tables=[table(state)]))
        statements = [engine.render(st) for st in self.step(inp, state)]
        history: list[tuple[int, float]] = []
        for k in range(start, start + count):
            with engine.transaction():
                for sql in statements:
                    engine.execute(sql)
            loss = engine.scalar(exp.select(exp.Max(this=col(LOSS))).from_(table(state)).where(_at(k + 1)))
            check_history([(k, loss)], 1)
            history.append((k, float(loss)))
            if progress:
                progress(k + 1, loss)
        return history


def _at(k: int) -> exp.Expression:
    return exp.EQ(this=col(ITERATION), expression=num(k))


def _insert(query: exp.Expression, name: str, columns: list[str]) -> exp.Insert:
    """``INSERT INTO name (columns) query``, built in place (the query is not copied)."""
    target = exp.Schema(this=table(name), expressions=[ident(c) for c in columns])
    return exp.Insert(this=target, expression=query)


def _aliased(rel: exp.Table, name: str) -> exp.Table:
    rel = rel.copy()
    rel.set("alias", exp.TableAlias(this=ident(name)))
    return rel


def inline_loss_select(program: TrainingProgram, data: exp.Expression, weights: Sequence) -> exp.Select:
    """The loss (mean data loss plus penalty) of ``weights`` on the prepared data, the weights inlined
    as DOUBLE literals: no parameter columns, so it fits every engine's column limit whatever the width
    (the wide :meth:`~sqlgrad.plans.program.TrainingProgram.loss_select` reads a one-row table with a
    column per parameter)."""
    graph = program.graph
    values = dict(zip(program.param_columns, _flat(weights), strict=True))
    constants = {leaf: [num(values[c]) for c in leaf_columns(leaf)] for leaf in program.param_leaves}
    st = stage([graph.loss], native_tanh=program.capabilities.native_tanh, constants=constants)
    row_loss = st.exprs(graph.loss)[0]
    if program.weighted:  # class weights: SUM(w * loss) / SUM(w), as the wide program
        sums = [exp.Sum(this=mul(col(SAMPLE_WEIGHT), paren(row_loss))), exp.Sum(this=col(SAMPLE_WEIGHT))]
    else:
        sums = [exp.Sum(this=row_loss), to_double(exp.Count(this=exp.Star()))]
    inner = st.build(
        data.copy(),
        [alias(sums[0], LOSS_SUM), alias(sums[1], N_ROWS)],
        passthrough=[SAMPLE_WEIGHT] if program.weighted else [],
    )
    data_loss = col(LOSS_SUM, "g") / col(N_ROWS, "g")
    terms: list[exp.Expression] = []
    ws = [values[c] for c in program.weight_columns]
    if program.spec.l2 != 0:
        terms.append(num(0.5) * num(program.spec.l2) * paren(total(num(v) * num(v) for v in ws)))
    if program.spec.l1 != 0:
        terms.append(num(program.spec.l1) * paren(total(exp.Abs(this=num(v)) for v in ws)))
    loss = data_loss if not terms else data_loss + total(terms)
    return exp.select(alias(loss, LOSS)).from_(inner.subquery("g"))


def _flat(weights: Sequence) -> list[float]:
    out: list[float] = []
    for w, b in weights:
        out.extend(float(v) for v in np.asarray(w, dtype=float).ravel())
        out.extend(float(v) for v in np.asarray(b, dtype=float).ravel())
    return out


def fits(program: TrainingProgram, caps: Capabilities) -> bool:
    """Whether the wide plans' statements fit the engine's column limits (see :func:`wide_columns`)."""
    select, tbl = wide_columns(program)
    return (caps.max_select_columns is None or select <= caps.max_select_columns) and (
        caps.max_table_columns is None or tbl <= caps.max_table_columns
    )


def wide_columns(program: TrainingProgram) -> tuple[int, int]:
    """``(widest select list, widest table)`` of the one-column-per-parameter plans.

    The parameter row is ``iteration, loss``, the parameters and the optimizer's state (a select list
    of the recursive plan, the table of the stepwise plan); the gradient aggregate has one ``SUM`` per
    parameter plus the loss sum and the row count; a staged level carries columns of lower levels
    beside its own.

    >>> from sqlgrad.engines.base import Capabilities
    >>> from sqlgrad.optim import Adam
    >>> from sqlgrad.spec import ModelSpec
    >>> wide_columns(TrainingProgram(ModelSpec(64, (32,), ("relu",), "softmax", 10), Adam(0.1),
    ...                              Capabilities("duckdb")))
    (7232, 7232)
    """
    row = len(program.row_columns)
    st = program.train_stages
    levels = [len(c) + len(n) for c, n in zip(st.carry, st.levels, strict=True)]
    base = len(program.data_columns) + len(program.param_columns)
    grads = len(program.param_columns) + 2
    return max(row, base, grads, *levels), row
