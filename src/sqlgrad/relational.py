"""Lowering of the layer-level graph to relations, for the long parameter representation.

The scalar lowering (:mod:`sqlgrad.lowering`) gives every element of a vector its own column; here every
element is a row, so no statement ever needs more columns than a handful, whatever the width of the
network. Each node of :func:`sqlgrad.autodiff.build_graph`'s graph becomes one common table expression:

==========================  ============================  ==========================================
node                        relation                      columns
==========================  ============================  ==========================================
per-row vector (size n)     element ``j`` of row ``rid``  ``rid, j, v``
per-row scalar              one value per row             ``rid, v`` (targets, losses, ``rowmax``...)
weight matrix (fan_in x n)  element ``(i, j)``            ``i, j, v``
bias vector                 element ``j``                 ``j, v``
==========================  ============================  ==========================================

Matrix products (``affine``, ``matmul_t``) are a JOIN on the shared index and a ``GROUP BY``; row
reductions (``rowmax``, ``logsumexp``) a ``GROUP BY rid``; the elementwise ops (activations and their
derivatives, the sigmoid and squared-error heads, ``scale``, ``add``) reuse the scalar representation's
SQL forms (:data:`sqlgrad.lowering.SCALAR`) on the ``v`` column of their joined inputs, so both
representations compute the same expressions. The per-row gradient of a weight, ``outer(h, g)``, is
never built per row: its sum over rows is one JOIN on ``rid`` and a ``GROUP BY i, j``
(:meth:`Lowered.gradient_sum`).

>>> from sqlgrad.spec import ModelSpec
>>> from sqlgrad.autodiff import build_graph
>>> from sqlgrad.sqlexpr import table
>>> g = build_graph(ModelSpec(2, (2,), ("relu",), "softmax", 2))
>>> leaves = {g.x: table("x"), g.y: table("y")}
>>> for k, (w, b) in enumerate(g.params, start=1):
...     leaves[w], leaves[b] = table(f"w{k}"), table(f"b{k}")
>>> low = lower([g.loss, *(g.grads[p] for p in g.param_leaves)], leaves)
>>> [name for name, _ in low.ctes]
['z1_sum', 'z1', 'a1', 'z2_sum', 'z2', 'zmax', 'lse', 'loss', 'dz2', 'da1', 'dz1']
>>> low.ctes[2][1].sql("duckdb")
'SELECT "t0"."rid", "t0"."j", CASE WHEN "t0"."v" > 0 THEN "t0"."v" ELSE 0 END AS "v" FROM "z1" AS "t0"'
>>> print(low.gradient_sum(g.grads[g.params[0][0]]).sql("duckdb", pretty=True))
SELECT
  "h"."j" AS "i",
  "g"."j" AS "j",
  SUM("h"."v" * "g"."v") AS "d"
FROM "x" AS "h"
JOIN "dz1" AS "g"
  ON "g"."rid" = "h"."rid"
WHERE
  "h"."v" <> 0 AND "g"."v" <> 0
GROUP BY
  "h"."j",
  "g"."j"
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlglot import exp

from .autodiff import Node, topological
from .errors import SpecError
from .lowering import SCALAR, LowerContext
from .sqlexpr import alias, case, col, eq, fexp, ident, ln, num

RID, J, INP, V = "rid", "j", "i", "v"
"""Column names of the relations: row key, element index, input index (matrices), value."""

ROW_SCALAR_OPS = frozenset(
    {"target", "one", "rowmax", "logsumexp", "softmax_xent", "sigmoid_logloss", "squared_error"}
)
"""Ops whose value is one number per row (relation ``rid, v``); every other row op is a vector."""

ELEMENTWISE_OPS = frozenset(
    {
        "act",
        "act_grad",
        "scale",
        "add",
        "sigmoid_logloss",
        "sigmoid_logloss_grad",
        "squared_error",
        "squared_error_grad",
    }
)
"""Ops whose element ``j`` depends only on element ``j`` of their vector inputs and on per-row scalars:
their SQL is the scalar representation's form of one element."""


def shape(node: Node) -> str:
    """``vector``, ``scalar``, ``matrix`` (a weight) or ``bias``: the columns of a node's relation.

    >>> from sqlgrad.autodiff import features, target, weight
    >>> shape(features(3)), shape(target()), shape(weight(1, 3, 2))
    ('vector', 'scalar', 'matrix')
    """
    if node.op == "weight":
        return "matrix"
    if node.op == "bias":
        return "bias"
    return "scalar" if node.op in ROW_SCALAR_OPS else "vector"


def _as(rel: exp.Expression, name: str) -> exp.Expression:
    """A relation (table or CTE name) with a quoted alias."""
    rel = rel.copy()
    if isinstance(rel, exp.Select):
        rel = rel.subquery()
    rel.set("alias", exp.TableAlias(this=ident(name)))
    return rel


def _on(*pairs: tuple[exp.Expression, exp.Expression]) -> exp.Expression:
    conds = [eq(a, b) for a, b in pairs]
    out = conds[0]
    for c in conds[1:]:
        out = exp.And(this=out, expression=c)
    return out


@dataclass
class Lowered:
    """Graph nodes lowered to common table expressions.

    Attributes:
        ctes: ``(name, query)`` in dependency order.
        relations: the relation of every lowered node (a CTE name, or the leaf relation given).
    """

    ctes: list[tuple[str, exp.Select]]
    relations: dict[Node, exp.Expression] = field(repr=False)
    scaled: dict[Node, exp.Expression] = field(default_factory=dict, repr=False)
    ordered: bool = False
    """Sums add their terms in a fixed order (:func:`_sum`)."""

    def sum(self, e: exp.Expression, key: exp.Expression | list[exp.Expression]) -> exp.Expression:
        """``SUM(e)``, ordered by ``key`` when this lowering is :attr:`ordered`."""
        return _sum(e, key, self.ordered)

    """Per-row gradient factors multiplied by the row's weight (:meth:`weighted`), read by
    :meth:`gradient_sum` instead of the plain relation."""

    def weighted(self, grads: list[Node], weight: exp.Expression) -> Lowered:
        """A copy whose gradient sums weight every row: the per-row factor ``g`` of each gradient (of
        ``outer(h, g)``, or a bias's vector) becomes one more CTE, ``g.v * sw.v`` joined on ``rid`` with
        ``weight(rid, v)``, built once per node (``dz1`` serves ``dw1`` and ``db1``). Backpropagation is
        linear in the output gradient, so this is the gradient of ``SUM(w * loss)``.

        >>> from sqlgrad.spec import ModelSpec
        >>> from sqlgrad.autodiff import build_graph
        >>> from sqlgrad.sqlexpr import table
        >>> g = build_graph(ModelSpec(2, (), (), "sigmoid", 1))
        >>> (w, b), = g.params
        >>> leaves = {g.x: table("x"), g.y: table("y"), w: table("w"), b: table("b")}
        >>> grads = [g.grads[p] for p in g.param_leaves]
        >>> low = lower([g.loss, *grads], leaves).weighted(grads, table("sw"))
        >>> print(low.ctes[-1][0], low.ctes[-1][1].sql("duckdb", pretty=True))
        dz1_sw SELECT
          "g"."rid",
          "g"."j",
          "g"."v" * "sw"."v" AS "v"
        FROM "dz1" AS "g"
        JOIN "sw" AS "sw"
          ON "sw"."rid" = "g"."rid"
        """
        ctes = list(self.ctes)
        scaled = dict(self.scaled)
        used = {name for name, _ in ctes}
        for grad in grads:
            for node in _factors(grad):
                if node in scaled:
                    continue
                name, k = f"{node.name}_sw", 1
                while name in used:
                    k += 1
                    name = f"{node.name}_sw_{k}"
                used.add(name)
                query = (
                    exp.select(col(RID, "g"), col(J, "g"), alias(col(V, "g") * col(V, "sw"), V))
                    .from_(_as(self.relations[node], "g"))
                    .join(_as(weight, "sw"), on=_on((col(RID, "sw"), col(RID, "g"))))
                )
                ctes.append((name, query))
                scaled[node] = exp.Table(this=ident(name))
        return Lowered(ctes, self.relations, scaled, self.ordered)

    def _factor(self, node: Node, name: str) -> exp.Expression:
        """The per-row gradient factor ``node`` (weighted when :meth:`weighted` made it so), aliased."""
        return _as(self.scaled.get(node, self.relations[node]), name)

    def relation(self, node: Node, name: str) -> exp.Expression:
        """The relation of a lowered node, aliased ``name``."""
        return _as(self.relations[node], name)

    def gradient_sum(self, grad: Node) -> exp.Select:
        """``SUM`` over the rows of a parameter's per-row gradient contribution, grouped by element.

        For a weight (``outer(h, g)``): ``SELECT h.j AS i, g.j AS j, SUM(h.v * g.v) AS d ... GROUP BY``,
        over the pairs where neither factor is 0 (a zero term leaves a sum unchanged; ReLU makes half the
        activations and deltas 0), so an element may have no group: the update reads a missing sum as 0;
        for a bias (a vector): ``SELECT j, SUM(v) AS d ... GROUP BY j``; a sum of contributions (``add``,
        a parameter used twice) sums the sums.
        """
        if grad.op == "outer":
            h, g = grad.inputs
            return (
                exp.select(
                    alias(col(J, "h"), INP),
                    alias(col(J, "g"), J),
                    alias(self.sum(col(V, "h") * col(V, "g"), col(RID, "g")), "d"),
                )
                .from_(self.relation(h, "h"))
                .join(self._factor(g, "g"), on=_on((col(RID, "g"), col(RID, "h"))))
                .where(exp.and_(_nonzero(col(V, "h")), _nonzero(col(V, "g"))))
                .group_by(col(J, "h"), col(J, "g"))
            )
        if grad.op == "add":
            a, b = (self.gradient_sum(x) for x in grad.inputs)
            keys = [INP, J] if any(e.alias == INP for e in a.expressions) else [J]
            both = exp.union(a, b, distinct=False).subquery("s")
            return (
                exp.select(*(col(k) for k in keys), alias(exp.Sum(this=col("d")), "d"))
                .from_(both)
                .group_by(*(col(k) for k in keys))
            )
        if shape(grad) != "vector":
            raise SpecError(f"cannot sum a {grad.op} gradient over rows")
        return (
            exp.select(col(J), alias(self.sum(col(V, "g"), col(RID, "g")), "d"))
            .from_(self._factor(grad, "g"))
            .group_by(col(J))
        )

    def with_(self, query: exp.Query) -> exp.Query:
        """``query`` with the CTEs attached as its ``WITH`` list."""
        ctes = [exp.CTE(this=q, alias=exp.TableAlias(this=ident(n))) for n, q in self.ctes]
        if ctes:
            query.set("with_", exp.With(expressions=ctes))
        return query


def _nonzero(e: exp.Expression) -> exp.Expression:
    return exp.NEQ(this=e, expression=num(0))


def _factors(grad: Node) -> list[Node]:
    """The per-row factor of a parameter's gradient that carries the output gradient (``g`` of
    ``outer(h, g)``, else the vector itself)."""
    if grad.op == "outer":
        return [grad.inputs[1]]
    if grad.op == "add":
        return [n for x in grad.inputs for n in _factors(x)]
    return [grad]


def row_nodes(grad: Node) -> list[Node]:
    """The per-row nodes a parameter's gradient sum reads (the inputs of ``outer``, else the node)."""
    if grad.op == "outer":
        return list(grad.inputs)
    if grad.op == "add":
        return [n for x in grad.inputs for n in row_nodes(x)]
    return [grad]


def lower(
    roots: list[Node], leaves: dict[Node, exp.Expression], native_tanh: bool = True, ordered: bool = False
) -> Lowered:
    """Lower ``roots`` and everything they need to CTEs.

    Args:
        roots: row nodes (the loss) and parameter gradients (``outer`` nodes are not lowered per row:
            their inputs are, for :meth:`Lowered.gradient_sum`).
        leaves: the relation of every leaf: features ``(rid, j, v)``, target ``(rid, v)``, weights
            ``(i, j, v)``, biases ``(j, v)``.
        native_tanh: the engine has ``TANH`` (else the scalar lowering's stable formula).
        ordered: every ``SUM`` adds its terms in the order of a key unique in its group
            (``SUM(v ORDER BY k)``, :func:`_sum`), so the result does not depend on the join order the
            engine's planner picks.
    """
    ctx = LowerContext(native_tanh=native_tanh)
    needed = [n for r in roots for n in row_nodes(r)]
    relations: dict[Node, exp.Expression] = {}
    ctes: list[tuple[str, exp.Select]] = []
    used: set[str] = set()

    def fresh(name: str) -> str:
        out, k = name, 1
        while out in used:
            k += 1
            out = f"{name}_{k}"
        used.add(out)
        return out

    def emit(name: str, query: exp.Select) -> exp.Expression:
        name = fresh(name)
        ctes.append((name, query))
        return exp.Table(this=ident(name))

    for node in topological(needed):
        if node.is_leaf and node.op != "one":
            if node not in leaves:
                raise SpecError(f"no relation given for the leaf {node.name}")
            relations[node] = leaves[node]
            continue
        op = node.op
        if op == "affine":
            _, w, b = node.inputs
            sums = (
                exp.select(
                    col(RID, "h"),
                    col(J, "w"),
                    alias(_sum(col(V, "h") * col(V, "w"), col(J, "h"), ordered), V),
                )
                .from_(_as(relations[node.inputs[0]], "h"))
                .join(_as(relations[w], "w"), on=_on((col(J, "h"), col(INP, "w"))))
                .group_by(col(RID, "h"), col(J, "w"))
            )
            s = emit(f"{node.name}_sum", sums)
            query = (
                exp.select(col(RID, "s"), col(J, "s"), alias(col(V, "s") + col(V, "b"), V))
                .from_(_as(s, "s"))
                .join(_as(relations[b], "b"), on=_on((col(J, "b"), col(J, "s"))))
            )
        elif op == "matmul_t":
            # dh[rid, i] = SUM_j g[rid, j] * W[i, j]
            query = (
                exp.select(
                    col(RID, "g"),
                    alias(col(INP, "w"), J),
                    alias(_sum(col(V, "g") * col(V, "w"), col(J, "g"), ordered), V),
                )
                .from_(_as(relations[node.inputs[0]], "g"))
                .join(_as(relations[node.inputs[1]], "w"), on=_on((col(J, "g"), col(J, "w"))))
                .group_by(col(RID, "g"), col(INP, "w"))
            )
        elif op == "rowmax":
            query = (
                exp.select(col(RID), alias(exp.Max(this=col(V)), V))
                .from_(_as(relations[node.inputs[0]], "z"))
                .group_by(col(RID))
            )
        elif op == "logsumexp":
            # m + LN(SUM_j EXP(z_j - m)), as the scalar form
            query = (
                exp.select(
                    col(RID, "z"),
                    alias(col(V, "m") + ln(_sum(fexp(col(V, "z") - col(V, "m")), col(J, "z"), ordered)), V),
                )
                .from_(_as(relations[node.inputs[0]], "z"))
                .join(_as(relations[node.inputs[1]], "m"), on=_on((col(RID, "m"), col(RID, "z"))))
                .group_by(col(RID, "z"), col(V, "m"))
            )
        elif op == "softmax_xent":
            # lse - z[y]: the logit of the row's class, by joining on j = y
            query = (
                exp.select(col(RID, "l"), alias(col(V, "l") - col(V, "z"), V))
                .from_(_as(relations[node.inputs[1]], "l"))
                .join(_as(relations[node.inputs[2]], "y"), on=_on((col(RID, "y"), col(RID, "l"))))
                .join(
                    _as(relations[node.inputs[0]], "z"),
                    on=_on((col(RID, "z"), col(RID, "l")), (col(J, "z"), col(V, "y"))),
                )
            )
        elif op == "softmax_xent_grad":
            # EXP(z_j - lse) - (1 if y = j else 0), as the scalar form
            onehot = case([(eq(col(V, "y"), col(J, "z")), num(1))], num(0))
            query = (
                exp.select(col(RID, "z"), col(J, "z"), alias(fexp(col(V, "z") - col(V, "l")) - onehot, V))
                .from_(_as(relations[node.inputs[0]], "z"))
                .join(_as(relations[node.inputs[1]], "l"), on=_on((col(RID, "l"), col(RID, "z"))))
                .join(_as(relations[node.inputs[2]], "y"), on=_on((col(RID, "y"), col(RID, "z"))))
            )
        elif op == "one":
            raise SpecError("the constant one has no relation of its own (scale folds it away)")
        elif op in ELEMENTWISE_OPS:
            query = _elementwise(node, [relations[i] for i in node.inputs], ctx)
        else:
            raise SpecError(f"no relational form for the op {op!r}")
        relations[node] = emit(node.name, query)
    return Lowered(ctes, relations, ordered=ordered)


def _sum(e: exp.Expression, key: exp.Expression | list[exp.Expression], ordered: bool) -> exp.Expression:
    """``SUM(e)``, or ``SUM(e ORDER BY key)`` when ``ordered``.

    Floating-point addition is not associative: a plain ``SUM`` adds its terms in the order the rows
    reach it, which follows the plan (which side of a join is built, which table is scanned first), and
    a planner chooses from statistics that differ between a run and the same run resumed from a
    checkpoint (DuckDB counts the deleted parameter rows in its estimates). Ordered by a key that is
    unique within the group (the input index of a matrix product, the row of a sum over rows), the sum
    is the same number whatever the plan.

    >>> _sum(col("v"), col("rid"), True).sql("duckdb")
    'SUM("v" ORDER BY "rid")'
    """
    if not ordered:
        return exp.Sum(this=e)
    keys = key if isinstance(key, list) else [key]
    return exp.Sum(this=exp.Order(this=e, expressions=[exp.Ordered(this=k) for k in keys]))


def _elementwise(node: Node, inputs: list[exp.Expression], ctx: LowerContext) -> exp.Select:
    """Element ``j`` of every vector input (joined on ``rid, j``) and the per-row scalars (on ``rid``),
    mapped by the scalar representation's form of one element."""
    shapes = [shape(i) for i in node.inputs]
    (expr,) = SCALAR[node.op](node, [[col(V, f"t{k}")] for k in range(len(inputs))], ctx)
    vectors = [k for k, s in enumerate(shapes) if s == "vector"]
    first = vectors[0] if vectors else 0
    base = f"t{first}"
    keys = [col(RID, base)]
    if shape(node) == "vector":
        if not vectors:
            raise SpecError(f"{node.op}: a vector result needs a vector input")
        keys.append(col(J, base))
    query = exp.select(*keys, alias(expr, V)).from_(_as(inputs[first], base))
    read = {c.table for c in expr.find_all(exp.Column)}
    for k, rel in enumerate(inputs):
        if k == first or f"t{k}" not in read:  # ReLU's derivative reads z and g, not the activation
            continue
        t = f"t{k}"
        pairs = [(col(RID, t), col(RID, base))]
        if shapes[k] == "vector" and shapes[first] == "vector":
            pairs.append((col(J, t), col(J, base)))
        query = query.join(_as(rel, t), on=_on(*pairs))
    return query
