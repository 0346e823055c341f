"""A small symbolic expression graph over layer-level ops, with reverse-mode automatic differentiation.

Nodes are immutable and hashable; each holds a per-row vector (the features, an affine map, an
activation, a loss) or a parameter tensor. :data:`RULES` gives every op its shape rule and its gradient
rule side by side, so adding an op is one row there plus one row in each lowering
(:mod:`sqlgrad.lowering`). :func:`build_graph` derives the forward pass, the per-row loss and the
per-row gradient contribution of every parameter from a :class:`~sqlgrad.spec.ModelSpec`; nothing is
written by hand per architecture.

The gradient of the mean loss with respect to a parameter is ``SUM(contribution) / n`` over the rows,
plus the penalty's gradient; the aggregate is left to the SQL plan.

>>> from sqlgrad.spec import ModelSpec
>>> g = build_graph(ModelSpec(2, (2,), ("relu",), "softmax", 2))
>>> g.logits.op, g.logits.size
('affine', 2)
>>> sorted(p.name for p in g.grads)
['b1', 'b2', 'w1', 'w2']
>>> g.grads[g.params[0][0]].op
'outer'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .errors import SpecError
from .spec import ModelSpec


@dataclass(frozen=True)
class Node:
    """One value of the graph.

    Attributes:
        op: the operation, a key of :data:`RULES`.
        inputs: the nodes it is computed from.
        size: number of scalar elements (per row for row nodes).
        name: a readable name, used for SQL column names.
        attrs: op parameters (activation kind, a parameter's shape...).
    """

    op: str
    inputs: tuple[Node, ...]
    size: int
    name: str
    attrs: tuple = ()

    @property
    def is_param(self) -> bool:
        return self.op in ("weight", "bias")

    @property
    def is_leaf(self) -> bool:
        return not self.inputs

    def __repr__(self) -> str:
        return f"Node({self.op}:{self.name}[{self.size}])"


GradRule = Callable[[Node, Node], list["Node | None"]]
"""``rule(node, g) -> one gradient node (or None) per input of node``."""


@dataclass(frozen=True)
class Rule:
    """How an op behaves under differentiation and staging.

    Attributes:
        grad: the vector-Jacobian product, or None for ops that are never differentiated through.
        single_use: per input, True when the op's lowering references each element of that input at most
            once, so a node whose only consumer is this op can be inlined instead of becoming a column.
    """

    grad: GradRule | None
    single_use: tuple[bool, ...]


# --- constructors (the forward builders) -----------------------------------------------------------


def features(n: int) -> Node:
    return Node("features", (), n, "x")


def target() -> Node:
    return Node("target", (), 1, "y")


def weight(layer: int, fan_in: int, fan_out: int) -> Node:
    return Node("weight", (), fan_in * fan_out, f"w{layer}", (layer, fan_in, fan_out))


def bias(layer: int, fan_out: int) -> Node:
    return Node("bias", (), fan_out, f"b{layer}", (layer,))


def affine(h: Node, w: Node, b: Node, name: str) -> Node:
    _, fan_in, fan_out = w.attrs
    if h.size != fan_in or b.size != fan_out:
        raise SpecError(f"affine {name}: input of size {h.size} does not fit weights {fan_in}x{fan_out}")
    return Node("affine", (h, w, b), fan_out, name)


def activation(kind: str, z: Node, name: str) -> Node:
    return Node("act", (z,), z.size, name, (kind,))


def rowmax(z: Node, name: str = "zmax") -> Node:
    return Node("rowmax", (z,), 1, name)


def logsumexp(z: Node, m: Node, name: str = "lse") -> Node:
    """``m + LN(SUM_j EXP(z_j - m))`` with ``m = rowmax(z)``: stable for any logits."""
    return Node("logsumexp", (z, m), 1, name)


def softmax_xent(z: Node, lse: Node, y: Node) -> Node:
    return Node("softmax_xent", (z, lse, y), 1, "loss")


def sigmoid_logloss(z: Node, y: Node) -> Node:
    return Node("sigmoid_logloss", (z, y), 1, "loss")


def squared_error(z: Node, y: Node) -> Node:
    return Node("squared_error", (z, y), 1, "loss")


def _grad_name(node: Node) -> str:
    return "d" + node.name


def scale(a: Node, g: Node) -> Node:
    """``a * g`` with g a per-row scalar (size 1); the constant one folds away."""
    if g.op == "one":
        return a
    return Node("scale", (a, g), a.size, a.name)


def add(a: Node, b: Node) -> Node:
    return Node("add", (a, b), a.size, a.name)


ONE = Node("one", (), 1, "one")
"""The seed of reverse mode: d loss / d loss = 1 on every row."""


# --- gradient rules ------------------------------------------------------------------------------


def _affine_grad(node: Node, g: Node) -> list[Node | None]:
    h, w, _ = node.inputs
    dh = Node("matmul_t", (g, w), h.size, _grad_name(h))
    dw = Node("outer", (h, g), w.size, _grad_name(w))
    return [dh, dw, g]


def _act_grad(node: Node, g: Node) -> list[Node | None]:
    (z,) = node.inputs
    return [Node("act_grad", (z, node, g), z.size, _grad_name(z), node.attrs)]


def _xent_grad(node: Node, g: Node) -> list[Node | None]:
    z, lse, y = node.inputs
    # Fused rule (as deep-learning frameworks do): d loss / d z = softmax(z) - onehot(y); the
    # stabiliser lse is part of the rule, not differentiated on its own.
    return [scale(Node("softmax_xent_grad", (z, lse, y), z.size, _grad_name(z)), g), None, None]


def _logloss_grad(node: Node, g: Node) -> list[Node | None]:
    z, y = node.inputs
    return [scale(Node("sigmoid_logloss_grad", (z, y), 1, _grad_name(z)), g), None]


def _sqerr_grad(node: Node, g: Node) -> list[Node | None]:
    z, y = node.inputs
    return [scale(Node("squared_error_grad", (z, y), 1, _grad_name(z)), g), None]


RULES: dict[str, Rule] = {
    # leaves
    "features": Rule(None, ()),
    "target": Rule(None, ()),
    "weight": Rule(None, ()),
    "bias": Rule(None, ()),
    "one": Rule(None, ()),
    # forward ops                     grad rule        each input used at most once per element?
    "affine": Rule(_affine_grad, (False, True, True)),
    "act": Rule(_act_grad, (False,)),
    "rowmax": Rule(None, (False,)),
    "logsumexp": Rule(None, (False, False)),
    "softmax_xent": Rule(_xent_grad, (False, True, False)),
    "sigmoid_logloss": Rule(_logloss_grad, (False, False)),
    "squared_error": Rule(_sqerr_grad, (False, False)),
    # gradient ops (never differentiated again)
    "softmax_xent_grad": Rule(None, (True, False, False)),
    "sigmoid_logloss_grad": Rule(None, (False, True)),
    "squared_error_grad": Rule(None, (True, True)),
    "act_grad": Rule(None, (False, False, True)),
    "matmul_t": Rule(None, (False, True)),
    "outer": Rule(None, (False, False)),
    "scale": Rule(None, (True, False)),
    "add": Rule(None, (True, True)),
    # the vector representation of a layer's products (made by the lowering, never by build_graph):
    # pack(h) is one list value per row, affine_dot / matmul_t_dot read it once per unit; a layer's
    # weights as lists, one per unit (columns) or per input (rows)
    "pack": Rule(None, (True,)),
    "weight_columns": Rule(None, (True,)),
    "weight_rows": Rule(None, (True,)),
    "affine_dot": Rule(None, (False, True, True)),
    "matmul_t_dot": Rule(None, (False, True)),
}


def topological(outputs: list[Node]) -> list[Node]:
    """Nodes reachable from ``outputs``, every node after its inputs."""
    order: list[Node] = []
    seen: set[Node] = set()
    stack: list[tuple[Node, bool]] = [(o, False) for o in reversed(outputs)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        stack.extend((i, False) for i in reversed(node.inputs) if i not in seen)
    return order


def gradients(loss: Node, wrt: list[Node]) -> dict[Node, Node]:
    """Reverse-mode: the per-row gradient contribution of ``loss`` with respect to each node in ``wrt``."""
    grads: dict[Node, Node] = {loss: ONE}
    for node in reversed(topological([loss])):
        g = grads.get(node)
        rule = RULES[node.op]
        if g is None or rule.grad is None:
            continue
        for inp, gi in zip(node.inputs, rule.grad(node, g), strict=True):
            if gi is None or inp.op in ("features", "target"):
                continue
            grads[inp] = add(grads[inp], gi) if inp in grads else gi
    missing = [p.name for p in wrt if p not in grads]
    if missing:
        raise SpecError(f"no gradient reaches {', '.join(missing)}")
    return {p: grads[p] for p in wrt}


@dataclass(frozen=True)
class Graph:
    """The differentiated network: everything a SQL plan needs.

    Attributes:
        spec: the model spec it was built from.
        x: the feature vector leaf; y: the target leaf.
        params: ``(W, b)`` leaves per layer.
        logits: the output layer's pre-activation.
        lse: log-sum-exp of the logits (softmax head only).
        loss: the per-row loss (the mean over rows is the data loss).
        grads: per-row gradient contribution of each parameter leaf.
    """

    spec: ModelSpec
    x: Node
    y: Node
    params: tuple[tuple[Node, Node], ...]
    logits: Node
    lse: Node | None
    loss: Node
    grads: dict[Node, Node]

    @property
    def param_leaves(self) -> list[Node]:
        return [p for pair in self.params for p in pair]


def build_graph(spec: ModelSpec) -> Graph:
    """Forward pass, per-row loss and per-row gradient contributions for ``spec``."""
    x, y = features(spec.n_inputs), target()
    sizes = spec.layer_sizes
    h = x
    params: list[tuple[Node, Node]] = []
    for k in range(spec.n_layers):
        w, b = weight(k + 1, sizes[k], sizes[k + 1]), bias(k + 1, sizes[k + 1])
        params.append((w, b))
        z = affine(h, w, b, f"z{k + 1}")
        h = activation(spec.activations[k], z, f"a{k + 1}") if k < len(spec.hidden) else z
    logits = h
    lse = None
    if spec.head == "softmax":
        lse = logsumexp(logits, rowmax(logits))
        loss = softmax_xent(logits, lse, y)
    elif spec.head == "sigmoid":
        loss = sigmoid_logloss(logits, y)
    else:
        loss = squared_error(logits, y)
    leaves = [p for pair in params for p in pair]
    return Graph(spec, x, y, tuple(params), logits, lse, loss, gradients(loss, leaves))
