"""Lowering of the layer-level graph to SQL expressions, for the scalar-column parameter representation.

Every parameter is one DOUBLE column (``w1_0_1`` is layer 1's weight from input 0 to unit 1, ``b1_1`` its
bias); every element of a row vector is one column expression. :data:`SCALAR` gives each op of
:data:`sqlgrad.autodiff.RULES` its SQL form. :func:`stage` turns the nodes a plan needs into levels of
nested SELECTs: a node used more than once becomes a named column of an earlier level, never an inlined
copy, and a column is carried up only as long as a later level reads it.

>>> from sqlgrad.spec import ModelSpec
>>> from sqlgrad.autodiff import build_graph
>>> g = build_graph(ModelSpec(2, (2,), ("relu",), "softmax", 2))
>>> st = stage([g.loss, g.grads[g.params[1][1]]], native_tanh=True)
>>> [[name for name, _ in level] for level in st.levels]
[['z1_0', 'z1_1'], ['a1_0', 'a1_1'], ['z2_0', 'z2_1'], ['zmax'], ['lse']]
>>> st.exprs(g.loss)[0].sql("duckdb")
'"lse" - CASE WHEN "y" = 0 THEN "z2_0" WHEN "y" = 1 THEN "z2_1" END'
>>> st.exprs(g.grads[g.params[1][1]])[1].sql("duckdb")
'EXP("z2_1" - "lse") - CASE WHEN "y" = 1 THEN 1 ELSE 0 END'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlglot import exp

from .autodiff import RULES, Node, topological
from .errors import SpecError
from .spec import LEAKY_RELU_SLOPE
from .sqlexpr import (
    alias,
    case,
    col,
    eq,
    fexp,
    ge,
    greatest,
    gt,
    ln,
    minus,
    neg,
    num,
    paren,
    plus,
    times,
    total,
)

if TYPE_CHECKING:
    from .engines.base import VectorDot

Exprs = list[exp.Expression]


def leaf_columns(node: Node) -> list[str]:
    """Column names of a leaf's elements (features ``x_i``, target ``y``, parameters ``w{l}_{i}_{j}``)."""
    if node.op == "features":
        return [f"x_{i}" for i in range(node.size)]
    if node.op == "target":
        return ["y"]
    if node.op == "weight":
        layer, fan_in, fan_out = node.attrs
        return [f"w{layer}_{i}_{j}" for i in range(fan_in) for j in range(fan_out)]
    if node.op == "bias":
        (layer,) = node.attrs
        return [f"b{layer}_{j}" for j in range(node.size)]
    raise SpecError(f"{node.op} is not a leaf")


def node_columns(node: Node) -> list[str]:
    """Column names for a materialized node's elements."""
    if node.is_leaf:
        return leaf_columns(node)
    return [node.name] if node.size == 1 else [f"{node.name}_{j}" for j in range(node.size)]


# --- one SQL form per op (scalar representation) ----------------------------------------------------


def _sigmoid(z: exp.Expression) -> exp.Expression:
    """Stable logistic function: never EXP of a large positive number."""
    return case(
        [(ge(z, num(0)), num(1) / paren(num(1) + fexp(neg(z.copy()))))],
        fexp(z.copy()) / paren(num(1) + fexp(z.copy())),
    )


TANH_SERIES_BELOW = 0.02
"""Below this |z| the formula form of tanh uses its series, which is exact there to double precision."""


def _tanh(z: exp.Expression, native: bool) -> exp.Expression:
    if native:
        return exp.Tanh(this=z)
    # For engines without TANH: tanh(z) = (1 - e^{-2z}) / (1 + e^{-2z}) on the side that cannot overflow;
    # near 0 the subtraction cancels digits, so there the series z(1 - z^2/3 + 2z^4/15 - 17z^6/315) is
    # used (relative error below 1e-15 for |z| < 0.02, where the formula's is below 3e-15).
    z2 = paren(z.copy() * z.copy())
    z4 = z2.copy() * z2.copy()
    series = z.copy() * paren(
        num(1) - z2 / num(3) + num(2) * z4 / num(15) - num(17) * z4.copy() * z2.copy() / num(315)
    )
    e_neg = fexp(num(-2) * paren(z.copy()))
    e_pos = fexp(num(2) * paren(z.copy()))
    return case(
        [
            (exp.LT(this=exp.Abs(this=z.copy()), expression=num(TANH_SERIES_BELOW)), series),
            (ge(z.copy(), num(0)), paren(num(1) - e_neg) / paren(num(1) + e_neg.copy())),
        ],
        paren(e_pos - num(1)) / paren(e_pos.copy() + num(1)),
    )


def _act(kind: str, z: exp.Expression, native_tanh: bool) -> exp.Expression:
    if kind == "relu":
        return case([(gt(z, num(0)), z.copy())], num(0))
    if kind == "leaky_relu":
        return case([(gt(z, num(0)), z.copy())], num(LEAKY_RELU_SLOPE) * paren(z.copy()))
    if kind == "tanh":
        return _tanh(z, native_tanh)
    if kind == "sigmoid":
        return _sigmoid(z)
    if kind == "identity":
        return z
    raise SpecError(f"unknown activation {kind!r}")


def _act_grad(kind: str, z: exp.Expression, a: exp.Expression, g: exp.Expression) -> exp.Expression:
    if kind == "relu":
        return case([(gt(z, num(0)), g)], num(0))
    if kind == "leaky_relu":
        return case([(gt(z, num(0)), g)], num(LEAKY_RELU_SLOPE) * paren(g.copy()))
    if kind == "tanh":
        return paren(g) * paren(num(1) - a * a.copy())
    if kind == "sigmoid":
        return paren(g) * a * paren(num(1) - a.copy())
    if kind == "identity":
        return g
    raise SpecError(f"unknown activation {kind!r}")


def _affine(node: Node, args: list[Exprs], ctx: LowerContext) -> Exprs:
    h, w, b = args
    _, fan_in, fan_out = node.inputs[1].attrs
    return [
        plus(paren(total(times(h[i].copy(), w[i * fan_out + j].copy()) for i in range(fan_in))), b[j].copy())
        for j in range(fan_out)
    ]


def _matmul_t(node: Node, args: list[Exprs], ctx: LowerContext) -> Exprs:
    g, w = args
    _, fan_in, fan_out = node.inputs[1].attrs
    return [
        total(times(g[j].copy(), w[i * fan_out + j].copy()) for j in range(fan_out)) for i in range(fan_in)
    ]


def _outer(node: Node, args: list[Exprs], ctx: LowerContext) -> Exprs:
    h, g = args
    return [times(h[i].copy(), g[j].copy()) for i in range(len(h)) for j in range(len(g))]


def _packed(ctx: LowerContext, elements: Exprs) -> exp.Expression:
    """One list value of ``elements`` (the engine's :attr:`VectorDot.pack` function)."""
    assert ctx.vector_dot is not None
    return exp.Anonymous(this=ctx.vector_dot.pack, expressions=[e.copy() for e in elements])


def _dot(ctx: LowerContext, vector: exp.Expression, weights: exp.Expression) -> exp.Expression:
    """``dot(vector, weights)``: one unit's products as one function call on two lists."""
    assert ctx.vector_dot is not None
    return exp.Anonymous(this=ctx.vector_dot.dot, expressions=[vector.copy(), weights.copy()])


def _weight_columns(node: Node, args: list[Exprs], ctx: LowerContext) -> Exprs:
    """Column ``j`` of a layer's weights (the weights into unit ``j``) as one list per unit."""
    (w,) = args
    _, fan_in, fan_out = node.attrs
    return [_packed(ctx, [w[i * fan_out + j] for i in range(fan_in)]) for j in range(fan_out)]


def _weight_rows(node: Node, args: list[Exprs], ctx: LowerContext) -> Exprs:
    """Row ``i`` of a layer's weights (the weights out of input ``i``) as one list per input."""
    (w,) = args
    _, fan_in, fan_out = node.attrs
    return [_packed(ctx, w[i * fan_out : (i + 1) * fan_out]) for i in range(fan_in)]


def _affine_dot(node: Node, args: list[Exprs], ctx: LowerContext) -> Exprs:
    (h,), columns, b = args
    return [plus(_dot(ctx, h, wj), bj.copy()) for wj, bj in zip(columns, b, strict=True)]


def _matmul_t_dot(node: Node, args: list[Exprs], ctx: LowerContext) -> Exprs:
    (g,), rows = args
    return [_dot(ctx, g, wi) for wi in rows]


def _pick(z: Exprs, y: exp.Expression) -> exp.Expression:
    """``z[y]`` for a class index y."""
    return case([(eq(y.copy(), num(j)), z[j].copy()) for j in range(len(z))], None)


def _xent(node: Node, args: list[Exprs], ctx: LowerContext) -> Exprs:
    z, (lse,), (y,) = args
    return [lse.copy() - _pick(z, y)]


def _xent_grad(node: Node, args: list[Exprs], ctx: LowerContext) -> Exprs:
    z, (lse,), (y,) = args
    return [
        fexp(z[j].copy() - lse.copy()) - case([(eq(y.copy(), num(j)), num(1))], num(0)) for j in range(len(z))
    ]


def _logloss(node: Node, args: list[Exprs], ctx: LowerContext) -> Exprs:
    (z,), (y,) = args
    # max(z, 0) - z*y + ln(1 + exp(-|z|)): the log loss of sigmoid(z), stable for any z
    relu = case([(gt(z, num(0)), z.copy())], num(0))
    return [relu - z.copy() * y.copy() + ln(num(1) + fexp(neg(exp.Abs(this=z.copy()))))]


REPRESENTATION_FORMS: dict[str, Callable[[Node, list[Exprs], LowerContext], Exprs]] = {
    "affine": _affine,
    "act": lambda n, a, c: [_act(n.attrs[0], e, c.native_tanh) for e in a[0]],
    "act_grad": lambda n, a, c: [
        _act_grad(n.attrs[0], z, h, g) for z, h, g in zip(a[0], a[1], a[2], strict=True)
    ],
    "matmul_t": _matmul_t,
    "outer": _outer,
    "rowmax": lambda n, a, c: [greatest([e.copy() for e in a[0]])],
    "logsumexp": lambda n, a, c: [
        plus(a[1][0].copy(), ln(total(fexp(minus(e.copy(), a[1][0].copy())) for e in a[0])))
    ],
    "softmax_xent": _xent,
    "softmax_xent_grad": _xent_grad,
    "sigmoid_logloss": _logloss,
    "sigmoid_logloss_grad": lambda n, a, c: [_sigmoid(a[0][0].copy()) - a[1][0].copy()],
    "squared_error": lambda n, a, c: [paren(a[0][0].copy() - a[1][0].copy()) * paren(a[0][0] - a[1][0])],
    "squared_error_grad": lambda n, a, c: [num(2) * paren(a[0][0] - a[1][0])],
    "scale": lambda n, a, c: [times(e.copy(), a[1][0].copy()) for e in a[0]],
    "add": lambda n, a, c: [x + y for x, y in zip(a[0], a[1], strict=True)],
    "one": lambda n, a, c: [num(1)],
    "pack": lambda n, a, c: [
        _packed(
            c, [exp.Coalesce(this=e.copy(), expressions=[num(0)]) for e in a[0]] if c.nullable_rows else a[0]
        )
    ],
    "weight_columns": _weight_columns,
    "weight_rows": _weight_rows,
    "affine_dot": _affine_dot,
    "matmul_t_dot": _matmul_t_dot,
}
"""The SQL form of every non-leaf op in the scalar representation (element expressions from the
element expressions of the inputs)."""

SCALAR = REPRESENTATION_FORMS

missing = set(RULES) - set(SCALAR) - {"features", "target", "weight", "bias"}
if missing:  # pragma: no cover - a guard for whoever adds an op
    raise RuntimeError(f"ops without a scalar SQL form: {sorted(missing)}")


def sigmoid_expr(z: exp.Expression) -> exp.Expression:
    """The stable logistic function, for prediction queries."""
    return _sigmoid(z)


@dataclass(frozen=True)
class LowerContext:
    native_tanh: bool = True
    vector_dot: VectorDot | None = None
    nullable_rows: bool = False
    """Row values may be NULL (a prediction over raw rows): packed as 0, since DuckDB's
    ``list_inner_product`` refuses a list holding a NULL; the caller blanks such a row's outputs."""


def pack(h: Node) -> Node:
    """The row vector ``h`` as one list value per row (a column of its own: every unit reads it)."""
    return Node("pack", (h,), 1, f"{h.name}_vec")


def weight_lists(w: Node, by: str) -> Node:
    """A layer's weights as lists: ``by="columns"`` one list per unit (the forward products),
    ``by="rows"`` one per input (the products flowing back)."""
    _, fan_in, fan_out = w.attrs
    if by == "columns":
        return Node("weight_columns", (w,), fan_out, f"{w.name}_col", w.attrs)
    return Node("weight_rows", (w,), fan_in, f"{w.name}_row", w.attrs)


def vectorize(roots: list[Node], vector_dot: VectorDot) -> dict[Node, Node]:
    """The graph of ``roots`` with every product of a row vector by a layer's weights that is wide
    enough (:meth:`VectorDot.applies`) taken as dot products of lists: ``affine(h, w, b)`` becomes
    ``affine_dot(pack(h), weight_lists(w, "columns"), b)`` and ``matmul_t(g, w)`` becomes
    ``matmul_t_dot(pack(g), weight_lists(w, "rows"))``. Returns the node that replaces each node (the
    same node where nothing below it changed).

    >>> from sqlgrad.spec import ModelSpec
    >>> from sqlgrad.autodiff import build_graph
    >>> from sqlgrad.engines.base import VectorDot
    >>> g = build_graph(ModelSpec(64, (32,), ("relu",), "softmax", 10))
    >>> new = vectorize([g.loss], VectorDot("list_value", "list_inner_product", 8, 4))
    >>> z2 = new[g.loss].inputs[0]
    >>> z2.op, [i.name for i in z2.inputs]
    ('affine_dot', ['a1_vec', 'w2_col', 'b2'])
    >>> z2.inputs[0].inputs[0].inputs[0].inputs[0].name
    'x_vec'
    """
    replaced: dict[Node, Node] = {}
    for node in topological(roots):
        inputs = tuple(replaced.get(i, i) for i in node.inputs)
        if node.op in ("affine", "matmul_t"):
            _, fan_in, fan_out = node.inputs[1].attrs
            # affine: the layer's input meets every unit; matmul_t: the output gradient meets every input
            vector, count = inputs[0], fan_out if node.op == "affine" else fan_in
            if vector_dot.applies(vector.size, count):
                lists = weight_lists(inputs[1], "columns" if node.op == "affine" else "rows")
                replaced[node] = Node(
                    f"{node.op}_dot", (pack(vector), lists, *inputs[2:]), node.size, node.name
                )
                continue
        if inputs != node.inputs:
            replaced[node] = Node(node.op, inputs, node.size, node.name, node.attrs)
    return replaced


@dataclass
class Staged:
    """Nodes lowered into levels of nested SELECTs.

    Attributes:
        levels: for each level (1-based order), the new ``(column, expression)`` pairs.
        carry: for each level, the columns of lower levels it passes up.
        base_columns: the columns the first level reads from the base relation: leaves, and the
            columns of :attr:`param_exprs`.
        param_exprs: ``(column, expression)`` of the values made of parameters only (a layer's
            weights as lists): one value per parameter row, which a plan can compute beside the
            parameters, before they meet the data rows (:meth:`build` with ``params_in_base``).
    """

    levels: list[list[tuple[str, exp.Expression]]]
    carry: list[list[str]]
    base_columns: list[str]
    _exprs: dict[Node, Exprs] = field(repr=False)
    param_exprs: list[tuple[str, exp.Expression]] = field(default_factory=list)

    def exprs(self, node: Node) -> Exprs:
        """Fresh element expressions of a requested node, valid over the top level."""
        return [e.copy() for e in self._exprs[node]]

    def build(
        self,
        base: exp.Expression,
        final: list[exp.Expression],
        passthrough: list[str] = (),  # type: ignore[assignment]
        base_alias: str = "s0",
        params_in_base: bool = False,
    ) -> exp.Select:
        """``SELECT final FROM (level L FROM (... FROM base))``.

        ``base`` must yield :attr:`base_columns` and the ``passthrough`` columns, which every level
        carries up unchanged (the user's columns in a prediction, the parameters in the nested plan).
        The columns of :attr:`param_exprs` are computed in a first level over ``base`` (from the
        parameter columns they are made of), unless ``params_in_base`` says that ``base`` has them.
        """
        source: exp.Expression = base
        src_alias = base_alias
        if self.param_exprs and not params_in_base:
            made = {n for n, _ in self.param_exprs}
            keep = [*passthrough, *(c for c in self.base_columns if c not in made and c not in passthrough)]
            select = exp.select(*[col(c) for c in keep], *[alias(e, n) for n, e in self.param_exprs])
            source, src_alias = exp.Subquery(this=select.from_(_aliased(source, src_alias), copy=False)), "sp"
        for k, (new, carried) in enumerate(zip(self.levels, self.carry, strict=True), start=1):
            extra = [c for c in passthrough if c not in carried]
            select = exp.select(*[col(c) for c in extra + carried], *[alias(e, n) for n, e in new])
            select = select.from_(_aliased(source, src_alias), copy=False)
            source, src_alias = exp.Subquery(this=select), f"s{k}"
        return exp.select(*final).from_(_aliased(source, src_alias), copy=False)


def _aliased(source: exp.Expression, name: str) -> exp.Expression:
    if isinstance(source, exp.Subquery):
        source.set("alias", exp.TableAlias(this=exp.to_identifier(name)))
        return source
    if isinstance(source, exp.Table):
        source = source.copy()
        source.set("alias", exp.TableAlias(this=exp.to_identifier(name)))
        return source
    return exp.Subquery(this=source, alias=exp.TableAlias(this=exp.to_identifier(name)))


def stage(
    roots: list[Node],
    native_tanh: bool = True,
    materialize: tuple[Node, ...] = (),
    constants: dict[Node, Exprs] | None = None,
    prefix: str = "",
    vector_dot: VectorDot | None = None,
    nullable_rows: bool = False,
) -> Staged:
    """Lower ``roots`` (and everything they need) into levels.

    A node becomes a column when it is used by more than one consumer, or by a consumer whose SQL form
    reads each of its elements more than once, or when it is in ``materialize``; otherwise it is inlined
    into its only consumer. The roots' own expressions are returned for the final SELECT (an aggregate,
    a window stage or a prediction), which reads each of their elements once.

    ``constants`` gives leaves (parameters) as expressions instead of columns: a prediction query inlines
    the trained weights as literals. ``prefix`` is put before every column name the stages make or read,
    so that they cannot collide with a user's columns carried alongside.

    With ``vector_dot`` (the engine's :attr:`~sqlgrad.engines.base.Capabilities.vector_dot`), wide
    layers multiply through lists (:func:`vectorize`); the requested roots keep their keys. With
    ``nullable_rows`` a NULL in a packed row vector is packed as 0 (:class:`LowerContext`).
    """
    constants = constants or {}
    ctx = LowerContext(native_tanh=native_tanh, vector_dot=vector_dot, nullable_rows=nullable_rows)
    requested = list(roots)
    if vector_dot is not None:
        replaced = vectorize(roots, vector_dot)
        roots = [replaced.get(r, r) for r in roots]
        materialize = tuple(replaced.get(m, m) for m in materialize)
    order = topological(roots)
    uses: dict[Node, list[tuple[Node | None, int]]] = {n: [] for n in order}
    for node in order:
        for idx, inp in enumerate(node.inputs):
            uses[inp].append((node, idx))
    for r in roots:
        uses[r].append((None, 0))

    def param_only(node: Node) -> bool:
        """Made of parameters only (a layer's weights as lists): one value per parameter row, computed
        once beside the parameters (:attr:`Staged.param_exprs`), so that the levels carry it instead
        of every weight it is made of."""
        return bool(node.inputs) and all(i.is_param for i in node.inputs)

    def inline(node: Node) -> bool:
        if node.is_leaf or node in materialize:
            return node.op == "one"
        if len(uses[node]) != 1:
            return False
        consumer, idx = uses[node][0]
        return consumer is None or RULES[consumer.op].single_use[idx]

    level: dict[Node, int] = {}
    exprs: dict[Node, Exprs] = {}
    levels: list[list[tuple[str, exp.Expression]]] = []
    reads: dict[str, int] = {}  # column -> highest level (or final) that reads it
    produced: dict[str, int] = {}  # column -> level it is made at (0 = base)
    column_refs: dict[Node, set[str]] = {}  # columns an inlined expression reads
    param_exprs: list[tuple[str, exp.Expression]] = []

    for node in order:
        if node in constants:
            exprs[node], level[node], column_refs[node] = list(constants[node]), 0, set()
            continue
        if node.is_leaf and node.op != "one":
            names = [prefix + n for n in leaf_columns(node)]
            for n in names:
                produced[n] = 0
            exprs[node] = [col(n) for n in names]
            level[node] = 0
            column_refs[node] = set(names)
            continue
        args = [exprs[i] for i in node.inputs]
        body = SCALAR[node.op](node, args, ctx)
        refs = set().union(*(column_refs[i] for i in node.inputs)) if node.inputs else set()
        avail = max((level[i] for i in node.inputs), default=0)
        if param_only(node):
            names = [prefix + n for n in node_columns(node)]
            for n, e in zip(names, body, strict=True):
                param_exprs.append((n, e))
                produced[n] = 0
            exprs[node], level[node], column_refs[node] = [col(n) for n in names], 0, set(names)
            continue
        if inline(node):
            exprs[node], level[node], column_refs[node] = body, avail, refs
            continue
        lvl = avail + 1
        while len(levels) < lvl:
            levels.append([])
        names = [prefix + n for n in node_columns(node)]
        if any(n in produced for n in names):
            names = [f"{n}_{len(produced)}" for n in names]
        for n, e in zip(names, body, strict=True):
            levels[lvl - 1].append((n, e))
            produced[n] = lvl
        for r in refs:
            reads[r] = max(reads.get(r, 0), lvl)
        exprs[node], level[node], column_refs[node] = [col(n) for n in names], lvl, set(names)

    top = len(levels) + 1
    for r in roots:
        for c in column_refs[r]:
            reads[c] = top
    carry: list[list[str]] = []
    for k in range(1, top):
        carry.append([c for c, made in produced.items() if made < k and reads.get(c, 0) > k])
    base_columns = [c for c, made in produced.items() if made == 0 and reads.get(c, 0) >= 1]
    requested_exprs = {q: exprs[r] for q, r in zip(requested, roots, strict=True)}
    return Staged(levels, carry, base_columns, requested_exprs, param_exprs)
