"""Model specification: pure data describing the network, its loss and how it is optimised.

Layer convention: ``h_next = act(h @ W + b)`` with ``W`` of shape ``(fan_in, fan_out)``; the last layer's
activation is the head.

>>> spec = ModelSpec(n_inputs=2, hidden=(2,), activations=("relu",), head="softmax", n_outputs=2, l2=1e-3)
>>> spec.layer_sizes
(2, 2, 2)
>>> spec.n_parameters
12
>>> ModelSpec(2, (), (), "sigmoid", 1, l2=0.0, l1=-1.0)
Traceback (most recent call last):
...
sqlgrad.errors.SpecError: l1 must be a finite number >= 0, got -1.0
>>> weights = init_weights(spec, seed=0)
>>> [w.shape for w, _ in weights]
[(2, 2), (2, 2)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from .errors import SpecError
from .optim import GradientDescent as GradientDescent  # re-exported: it lives in sqlgrad.optim

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "identity")
"""Hidden-layer activations."""

HEADS = ("softmax", "sigmoid", "identity")
"""Output heads: softmax + cross-entropy, sigmoid + log loss, identity + mean squared error."""

LEAKY_RELU_SLOPE = 0.01
"""Slope of ``leaky_relu`` for negative inputs (as in PyTorch and scikit-learn defaults)."""

Weights = list[tuple[np.ndarray, np.ndarray]]
"""Parameters of a network: one ``(W, b)`` pair per layer, ``W`` of shape (fan_in, fan_out)."""


@dataclass(frozen=True)
class ModelSpec:
    """The architecture and the loss of a multi-layer perceptron.

    Attributes:
        n_inputs: number of input features.
        hidden: width of each hidden layer (empty for a linear / logistic model).
        activations: activation of each hidden layer, one of :data:`ACTIVATIONS`.
        head: ``softmax`` (cross-entropy over ``n_outputs`` classes), ``sigmoid`` (binary log loss, one
            output) or ``identity`` (regression, mean squared error, one output).
        n_outputs: width of the output layer.
        l2: L2 penalty ``0.5 * l2 * sum(W * W)`` over weight matrices (not biases), as in the article.
        l1: L1 penalty ``l1 * sum(|W|)`` over weight matrices (not biases), with the subgradient
            ``l1 * sign(W)`` (0 at 0).
    """

    n_inputs: int
    hidden: tuple[int, ...]
    activations: tuple[str, ...]
    head: str
    n_outputs: int
    l2: float = 0.0
    l1: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "activations", tuple(self.activations))
        if self.n_inputs < 1:
            raise SpecError("a model needs at least one input feature")
        if any(h < 1 for h in self.hidden):
            raise SpecError(f"hidden layer sizes must be positive integers, got {list(self.hidden)}")
        if len(self.activations) != len(self.hidden):
            raise SpecError(
                f"{len(self.hidden)} hidden layers need {len(self.hidden)} activations, "
                f"got {len(self.activations)}"
            )
        for act in self.activations:
            if act not in ACTIVATIONS:
                raise SpecError(f"unknown activation {act!r}; choose one of {', '.join(ACTIVATIONS)}")
        if self.head not in HEADS:
            raise SpecError(f"unknown head {self.head!r}; choose one of {', '.join(HEADS)}")
        if self.head == "softmax" and self.n_outputs < 2:
            raise SpecError("a softmax head needs at least 2 classes")
        if self.head in ("sigmoid", "identity") and self.n_outputs != 1:
            raise SpecError(f"a {self.head} head has exactly one output, got {self.n_outputs}")
        for what in ("l2", "l1"):
            value = getattr(self, what)
            if not np.isfinite(value) or value < 0:
                raise SpecError(f"{what} must be a finite number >= 0, got {value}")

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Widths from input to output, e.g. ``(2, 2, 2)`` for the article's network."""
        return (self.n_inputs, *self.hidden, self.n_outputs)

    @property
    def n_layers(self) -> int:
        """Number of affine layers (hidden layers + the output layer)."""
        return len(self.hidden) + 1

    @property
    def layer_activations(self) -> tuple[str, ...]:
        """Activation of every layer, the head last (as stored in the model file)."""
        return (*self.activations, self.head)

    @property
    def n_parameters(self) -> int:
        """Number of scalar parameters (weights and biases)."""
        sizes = self.layer_sizes
        return sum((a + 1) * b for a, b in pairwise(sizes))

    def check_weights(self, weights: Weights) -> None:
        """Raise :class:`SpecError` unless ``weights`` has this spec's shapes and finite values."""
        sizes = self.layer_sizes
        if len(weights) != self.n_layers:
            raise SpecError(f"expected {self.n_layers} layers of weights, got {len(weights)}")
        for k, (w, b) in enumerate(weights):
            want_w, want_b = (sizes[k], sizes[k + 1]), (sizes[k + 1],)
            if np.shape(w) != want_w or np.shape(b) != want_b:
                raise SpecError(
                    f"layer {k + 1}: W must be {want_w[0]}x{want_w[1]} and b of length {want_b[0]}, "
                    f"got W {np.shape(w)} and b {np.shape(b)}"
                )
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise SpecError(f"layer {k + 1}: weights must be finite numbers")


def build_spec(
    n_inputs: int,
    hidden: Sequence[int],
    activation: str | Sequence[str],
    head: str,
    n_outputs: int,
    l2: float = 0.0,
    l1: float = 0.0,
) -> ModelSpec:
    """Build a :class:`ModelSpec`, repeating a single ``activation`` over all hidden layers.

    >>> build_spec(3, [16, 8], "tanh", "identity", 1).activations
    ('tanh', 'tanh')
    """
    acts = (activation,) * len(hidden) if isinstance(activation, str) else tuple(activation)
    return ModelSpec(n_inputs, tuple(hidden), acts, head, n_outputs, float(l2), float(l1))


def init_weights(spec: ModelSpec, seed: int = 0) -> Weights:
    """Seeded initialisation: He normal before ReLU-like activations, Glorot normal otherwise; biases 0.

    The draws come from ``numpy.random.default_rng(seed)`` layer by layer, W row-major, so a seed gives
    the same weights on every machine.
    """
    rng = np.random.default_rng(seed)
    sizes = spec.layer_sizes
    weights: Weights = []
    for k, act in enumerate(spec.layer_activations):
        fan_in, fan_out = sizes[k], sizes[k + 1]
        he = act in ("relu", "leaky_relu")
        std = np.sqrt(2.0 / fan_in) if he else np.sqrt(2.0 / (fan_in + fan_out))
        weights.append((rng.normal(0.0, std, size=(fan_in, fan_out)), np.zeros(fan_out)))
    return weights
