"""Optimizers and learning-rate schedules, as SQL updates of the parameter row.

An optimizer turns the previous parameter row into the next one. Its state (momentum buffers, Adam's
moments) lives in the same row, after the parameters: ``iteration, loss, <params>, <state>``. Each
optimizer declares its state columns per parameter (``v_w1_0_0``, ``m_b2_1``...) and builds, from the
previous row (alias ``prev``) and the gradient aggregate (alias ``grads``), one expression per parameter
and one per state column. State starts at zero.

``g`` below is the full gradient of the training loss for one parameter:
``g = SUM(contribution) / n + l2 * W + l1 * SIGN(W)`` for weights and ``SUM(contribution) / n`` for
biases (no penalty on biases). ``t`` is the 0-based index of the update, read from the previous row's
``iteration`` column, so every plan gets schedules and Adam's bias correction without extra state.

The conventions are PyTorch's (``torch.optim.SGD`` with ``dampening=0``, ``nesterov`` on or off, and
``torch.optim.Adam`` without weight decay or amsgrad), with the penalties inside ``g``.

>>> opt = make_optimizer("adam", 0.01, schedule="step", gamma=0.5, step_size=10)
>>> opt.state_columns(["w1_0_0", "b1_0"])
['m_w1_0_0', 'm_b1_0', 'v_w1_0_0', 'v_b1_0']
>>> [opt.schedule.rate(opt.lr, t) for t in (0, 9, 10, 25)]
[0.01, 0.01, 0.005, 0.0025]
>>> from sqlgrad.sqlexpr import to_double
>>> opt.lr_expr(to_double(col("iteration", "p"))).sql("duckdb")
'CAST(0.01 AS DOUBLE) * POWER(CAST(0.5 AS DOUBLE), FLOOR(CAST("p"."iteration" AS DOUBLE) / 10))'
>>> opt.options()["optimizer"], opt.options()["schedule"]
('adam', 'step')
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from sqlglot import exp

from .errors import SpecError, UsageError
from .sqlexpr import alias, col, num

if TYPE_CHECKING:
    from .plans.program import TrainingProgram

OPTIMIZERS = ("gd", "momentum", "nesterov", "adam")
"""Optimizer names, as given to :func:`make_optimizer` and ``--optimizer``."""

Grad = Callable[[], exp.Expression]
"""Builds a fresh copy of one parameter's full gradient expression at each call."""

SCHEDULES = ("constant", "step", "exponential", "inverse-time")
"""Learning-rate schedule names, as given to :func:`make_schedule` and ``--schedule``."""


_PRECEDENCE: dict[type[exp.Expression], int] = {exp.Add: 1, exp.Sub: 1, exp.Mul: 2, exp.Div: 2}


def _op(kind: type[exp.Binary], a: exp.Expression, b: exp.Expression) -> exp.Expression:
    """``a <op> b`` built in place (sqlglot's operators copy both operands, which is slow on the update
    of a wide model), with parentheses only where the tree needs them: around a left operand of lower
    precedence and a right operand of lower or equal precedence (so the engine evaluates in the
    tree's order: ``a + (b + c)`` stays as written)."""
    level = _PRECEDENCE[kind]
    left = _PRECEDENCE.get(type(a), 3)
    right = _PRECEDENCE.get(type(b), 3)
    a = exp.Paren(this=a) if left < level or isinstance(a, exp.Neg) else a
    b = exp.Paren(this=b) if right <= level or isinstance(b, exp.Neg) else b
    return kind(this=a, expression=b)


def add(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    return _op(exp.Add, a, b)


def sub(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    return _op(exp.Sub, a, b)


def mul(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    return _op(exp.Mul, a, b)


def div(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    return _op(exp.Div, a, b)


def power(a: exp.Expression, b: exp.Expression) -> exp.Expression:
    return exp.Pow(this=a, expression=b)


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(f"{what} must be a finite number, got {value!r}")
    return float(value)


# --- learning-rate schedules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule: the rate of update ``t`` (0-based) from the base rate ``lr``.

    :meth:`rate` (Python) and :meth:`lr_expr` (SQL) compute the same value with the same operations.
    """

    name: ClassVar[str] = ""

    def rate(self, lr: float, t: int) -> float:
        """The learning rate of update ``t``."""
        raise NotImplementedError

    def lr_expr(self, lr: float, t: exp.Expression) -> exp.Expression:
        """The learning rate of update ``t`` as SQL, ``t`` a DOUBLE expression (the iteration)."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The schedule's name and parameters, as recorded in a model's ``training`` dict."""
        return {"schedule": self.name}


@dataclass(frozen=True)
class Constant(Schedule):
    """``lr`` at every update."""

    name: ClassVar[str] = "constant"

    def rate(self, lr: float, t: int) -> float:
        return lr

    def lr_expr(self, lr: float, t: exp.Expression) -> exp.Expression:
        return num(lr)


@dataclass(frozen=True)
class StepDecay(Schedule):
    """``lr * gamma ** floor(t / step_size)`` (PyTorch's ``StepLR``): multiplied by ``gamma`` every
    ``step_size`` updates."""

    step_size: int
    gamma: float = 0.1
    name: ClassVar[str] = "step"

    def __post_init__(self) -> None:
        if isinstance(self.step_size, bool) or not isinstance(self.step_size, int) or self.step_size < 1:
            raise SpecError(f"step_size must be a whole number >= 1, got {self.step_size!r}")
        if _finite(self.gamma, "gamma") <= 0:
            raise SpecError(f"gamma must be > 0, got {self.gamma}")

    def rate(self, lr: float, t: int) -> float:
        return lr * self.gamma ** math.floor(t / self.step_size)

    def lr_expr(self, lr: float, t: exp.Expression) -> exp.Expression:
        k = exp.Floor(this=div(t, num(self.step_size)))
        return mul(num(lr), power(num(self.gamma), k))

    def options(self) -> dict[str, Any]:
        return {"schedule": self.name, "gamma": self.gamma, "step_size": self.step_size}


@dataclass(frozen=True)
class ExponentialDecay(Schedule):
    """``lr * gamma ** t`` (PyTorch's ``ExponentialLR``)."""

    gamma: float
    name: ClassVar[str] = "exponential"

    def __post_init__(self) -> None:
        if _finite(self.gamma, "gamma") <= 0:
            raise SpecError(f"gamma must be > 0, got {self.gamma}")

    def rate(self, lr: float, t: int) -> float:
        return lr * self.gamma ** float(t)

    def lr_expr(self, lr: float, t: exp.Expression) -> exp.Expression:
        return mul(num(lr), power(num(self.gamma), t))

    def options(self) -> dict[str, Any]:
        return {"schedule": self.name, "gamma": self.gamma}


@dataclass(frozen=True)
class InverseTimeDecay(Schedule):
    """``lr / (1 + decay * t)``."""

    decay: float
    name: ClassVar[str] = "inverse-time"

    def __post_init__(self) -> None:
        if _finite(self.decay, "decay") < 0:
            raise SpecError(f"decay must be >= 0, got {self.decay}")

    def rate(self, lr: float, t: int) -> float:
        return lr / (1 + self.decay * t)

    def lr_expr(self, lr: float, t: exp.Expression) -> exp.Expression:
        return div(num(lr), add(num(1), mul(num(self.decay), t)))

    def options(self) -> dict[str, Any]:
        return {"schedule": self.name, "decay": self.decay}


def make_schedule(
    name: str = "constant",
    *,
    gamma: float | None = None,
    step_size: int | None = None,
    decay: float | None = None,
) -> Schedule:
    """A schedule by name. ``step`` needs ``step_size`` (``gamma`` defaults to 0.1), ``exponential``
    needs ``gamma``, ``inverse-time`` needs ``decay``; a parameter the schedule does not use is an error.

    >>> make_schedule("inverse-time", decay=0.5).rate(1.0, 2)
    0.5
    """
    given = {"gamma": gamma, "step_size": step_size, "decay": decay}
    uses = {
        "constant": (),
        "step": ("gamma", "step_size"),
        "exponential": ("gamma",),
        "inverse-time": ("decay",),
    }
    if name not in uses:
        raise UsageError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    extra = [k for k, v in given.items() if v is not None and k not in uses[name]]
    if extra:
        raise UsageError(f"{extra[0]} does not apply to the {name!r} schedule")
    if name == "constant":
        return Constant()
    if name == "step":
        if step_size is None:
            raise UsageError("the 'step' schedule needs step_size (--step-size)")
        return StepDecay(step_size, 0.1 if gamma is None else gamma)
    if name == "exponential":
        if gamma is None:
            raise UsageError("the 'exponential' schedule needs gamma (--gamma)")
        return ExponentialDecay(gamma)
    if decay is None:
        raise UsageError("the 'inverse-time' schedule needs decay (--decay)")
    return InverseTimeDecay(decay)


# --- optimizers ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Optimizer:
    """An update rule with its learning rate and schedule.

    Attributes:
        lr: base learning rate, a finite number > 0.
        schedule: how the rate changes with the update index ``t`` (default constant).
    """

    lr: float = 0.1
    schedule: Schedule = field(default_factory=Constant)
    name: ClassVar[str] = ""
    state: ClassVar[tuple[str, ...]] = ()
    """Prefixes of the state columns, one column per prefix and parameter: ``<prefix>_<param>``."""

    def __post_init__(self) -> None:
        if isinstance(self.lr, bool) or not isinstance(self.lr, int | float):
            raise SpecError(f"the learning rate must be a number, got {self.lr!r}")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise SpecError(f"the learning rate must be a finite number > 0, got {self.lr}")
        if not isinstance(self.schedule, Schedule):
            raise SpecError(f"not a learning-rate schedule: {self.schedule!r}")

    def state_columns(self, param_columns: list[str]) -> list[str]:
        """The state columns, in row order: every parameter for the first prefix, then the next."""
        return [f"{prefix}_{c}" for prefix in self.state for c in param_columns]

    def lr_expr(self, t: exp.Expression) -> exp.Expression:
        """The learning rate of update ``t`` (a DOUBLE expression) as SQL."""
        return self.schedule.lr_expr(self.lr, t)

    def options(self) -> dict[str, Any]:
        """Name, rate, hyperparameters and schedule, as recorded in a model's ``training`` dict."""
        return {"optimizer": self.name, "lr": self.lr, **self.hyperparameters(), **self.schedule.options()}

    def hyperparameters(self) -> dict[str, Any]:
        return {}

    def updates(
        self,
        program: TrainingProgram,
        prev: str | None,
        grads: str | None,
        t: exp.Expression | None = None,
    ) -> list[exp.Expression]:
        """The next parameters, then the next state, as aliased expressions in row order.

        Args:
            program: gives the parameter columns and each parameter's full gradient.
            prev: alias of the previous row (parameters and state).
            grads: alias of the gradient aggregate (``d_<param>`` sums and the row count ``n``).
            t: the 0-based update index as a DOUBLE expression; default the previous row's iteration.
        """
        if t is None:
            t = program.step_expr(prev)
        params: list[exp.Expression] = []
        states: list[list[exp.Expression]] = [[] for _ in self.state]
        for c in program.param_columns:
            new_p, new_state = self.param_update(
                c, lambda c=c: program.gradient(c, prev, grads), self.lr_expr(t.copy()), t.copy(), prev
            )
            params.append(alias(new_p, c))
            for k, (prefix, e) in enumerate(zip(self.state, new_state, strict=True)):
                states[k].append(alias(e, f"{prefix}_{c}"))
        return [*params, *(e for column in states for e in column)]

    def param_update(
        self,
        column: str,
        grad: Grad,
        lr: exp.Expression,
        t: exp.Expression,
        prev: str | None,
    ) -> tuple[exp.Expression, list[exp.Expression]]:
        """One parameter column's next value and next state (one expression per :attr:`state` prefix),
        for the one-column-per-parameter row: :meth:`scalar_update` on ``prev.<column>`` and
        ``prev.<prefix>_<column>``.

        ``grad()`` builds a fresh copy of the parameter's full gradient ``g`` at each call."""
        state = [col(f"{prefix}_{column}", prev) for prefix in self.state]
        return self.scalar_update(col(column, prev), grad, state, lr, t)

    def scalar_update(
        self,
        param: exp.Expression,
        grad: Grad,
        state: list[exp.Expression],
        lr: exp.Expression,
        t: exp.Expression,
    ) -> tuple[exp.Expression, list[exp.Expression]]:
        """The update of one scalar parameter, whatever holds it (a column of the parameter row, or the
        value column of a parameter table's row): its next value and its next state.

        Args:
            param: the current value (used once: give a fresh expression).
            grad: builds a fresh copy of the full gradient ``g`` at each call.
            state: the current state, one expression per :attr:`state` prefix (each used once).
            lr: the learning rate of this update; t: the 0-based update index (DOUBLE).

        >>> new, state = Momentum(0.1, momentum=0.5).scalar_update(
        ...     col("w"), lambda: col("g"), [col("v")], num(0.1), num(0))
        >>> new.sql(), [e.sql() for e in state]
        ('"w" - CAST(0.1 AS DOUBLE) * (CAST(0.5 AS DOUBLE) * "v" + "g")', ['CAST(0.5 AS DOUBLE) * "v" + "g"'])
        """
        raise NotImplementedError


@dataclass(frozen=True)
class GradientDescent(Optimizer):
    """Full-batch gradient descent: ``p <- p - lr_t * g`` (no state)."""

    name: ClassVar[str] = "gd"

    def scalar_update(
        self,
        param: exp.Expression,
        grad: Grad,
        state: list[exp.Expression],
        lr: exp.Expression,
        t: exp.Expression,
    ) -> tuple[exp.Expression, list[exp.Expression]]:
        return sub(param, mul(lr, grad())), []


@dataclass(frozen=True)
class Momentum(Optimizer):
    """Heavy-ball momentum, PyTorch's ``SGD(momentum=mu, dampening=0)``: ``v <- mu * v + g``, then
    ``p <- p - lr_t * v``, with ``v`` starting at 0 (so the first step is ``v = g``).

    Attributes:
        momentum: ``mu``, a finite number >= 0 (default 0.9).
    """

    momentum: float = 0.9
    name: ClassVar[str] = "momentum"
    state: ClassVar[tuple[str, ...]] = ("v",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if _finite(self.momentum, "momentum") < 0:
            raise SpecError(f"momentum must be >= 0, got {self.momentum}")

    def hyperparameters(self) -> dict[str, Any]:
        return {"momentum": self.momentum}

    def velocity(self, buffer: exp.Expression, grad: Grad) -> exp.Expression:
        """``mu * v + g`` from the previous buffer ``v``."""
        return add(mul(num(self.momentum), buffer), grad())

    def scalar_update(
        self,
        param: exp.Expression,
        grad: Grad,
        state: list[exp.Expression],
        lr: exp.Expression,
        t: exp.Expression,
    ) -> tuple[exp.Expression, list[exp.Expression]]:
        v = self.velocity(state[0], grad)
        return sub(param, mul(lr, v.copy())), [v]


@dataclass(frozen=True)
class Nesterov(Momentum):
    """Nesterov momentum, PyTorch's ``SGD(momentum=mu, dampening=0, nesterov=True)``:
    ``v <- mu * v + g``, then ``p <- p - lr_t * (g + mu * v)``, with ``v`` starting at 0.

    Attributes:
        momentum: ``mu``, a finite number > 0 (default 0.9).
    """

    name: ClassVar[str] = "nesterov"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.momentum <= 0:
            raise SpecError("Nesterov momentum needs momentum > 0")

    def scalar_update(
        self,
        param: exp.Expression,
        grad: Grad,
        state: list[exp.Expression],
        lr: exp.Expression,
        t: exp.Expression,
    ) -> tuple[exp.Expression, list[exp.Expression]]:
        v = self.velocity(state[0], grad)
        step = add(grad(), mul(num(self.momentum), v.copy()))
        return sub(param, mul(lr, step)), [v]


@dataclass(frozen=True)
class Adam(Optimizer):
    """Adam, PyTorch's convention: with ``s = t + 1`` the step count (1 at the first update),
    ``m <- beta1 * m + (1 - beta1) * g``, ``v <- beta2 * v + (1 - beta2) * g * g``,
    ``m_hat = m / (1 - beta1 ** s)``, ``v_hat = v / (1 - beta2 ** s)``, and
    ``p <- p - lr_t * m_hat / (sqrt(v_hat) + eps)``; ``m`` and ``v`` start at 0. The step count is the
    iteration column, so it needs no state column of its own.

    Attributes:
        beta1: decay of the first moment, in [0, 1) (default 0.9).
        beta2: decay of the second moment, in [0, 1) (default 0.999).
        eps: added to ``sqrt(v_hat)``, finite and >= 0 (default 1e-8).
    """

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    name: ClassVar[str] = "adam"
    state: ClassVar[tuple[str, ...]] = ("m", "v")

    def __post_init__(self) -> None:
        super().__post_init__()
        for what in ("beta1", "beta2"):
            value = _finite(getattr(self, what), what)
            if not 0 <= value < 1:
                raise SpecError(f"{what} must be in [0, 1), got {value}")
        if _finite(self.eps, "eps") < 0:
            raise SpecError(f"eps must be >= 0, got {self.eps}")

    def hyperparameters(self) -> dict[str, Any]:
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def scalar_update(
        self,
        param: exp.Expression,
        grad: Grad,
        state: list[exp.Expression],
        lr: exp.Expression,
        t: exp.Expression,
    ) -> tuple[exp.Expression, list[exp.Expression]]:
        b1, b2 = self.beta1, self.beta2
        m = add(mul(num(b1), state[0]), mul(num(1 - b1), grad()))
        v = add(mul(num(b2), state[1]), mul(mul(num(1 - b2), grad()), grad()))
        s = add(t, num(1))
        m_hat = div(m.copy(), sub(num(1), power(num(b1), s)))
        v_hat = div(v.copy(), sub(num(1), power(num(b2), s.copy())))
        denom = add(exp.Sqrt(this=v_hat), num(self.eps))
        return sub(param, div(mul(lr, m_hat), denom)), [m, v]


OPTIMIZER_CLASSES: dict[str, type[Optimizer]] = {
    c.name: c for c in (GradientDescent, Momentum, Nesterov, Adam)
}


def make_optimizer(
    name: str = "gd",
    lr: float | None = None,
    *,
    momentum: float | None = None,
    beta1: float | None = None,
    beta2: float | None = None,
    eps: float | None = None,
    schedule: str | Schedule = "constant",
    gamma: float | None = None,
    step_size: int | None = None,
    decay: float | None = None,
) -> Optimizer:
    """An optimizer by name (``gd``, ``momentum``, ``nesterov``, ``adam``) with its hyperparameters and a
    schedule (a :class:`Schedule`, or a name with ``gamma``/``step_size``/``decay``, see
    :func:`make_schedule`). ``None`` takes the default (``lr`` 0.1, ``momentum`` 0.9, ``beta1`` 0.9,
    ``beta2`` 0.999, ``eps`` 1e-8); a hyperparameter the optimizer does not use is an error.

    >>> make_optimizer("momentum", 0.5, momentum=0.8)
    Momentum(lr=0.5, schedule=Constant(), momentum=0.8)
    >>> make_optimizer("gd", 0.5, beta1=0.8)
    Traceback (most recent call last):
    ...
    sqlgrad.errors.UsageError: beta1 does not apply to the 'gd' optimizer
    """
    if name not in OPTIMIZER_CLASSES:
        raise UsageError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    given = {"momentum": momentum, "beta1": beta1, "beta2": beta2, "eps": eps}
    uses = {"momentum": ("momentum",), "nesterov": ("momentum",), "adam": ("beta1", "beta2", "eps")}
    extra = [k for k, v in given.items() if v is not None and k not in uses.get(name, ())]
    if extra:
        raise UsageError(f"{extra[0]} does not apply to the {name!r} optimizer")
    if isinstance(schedule, str):
        sched = make_schedule(schedule, gamma=gamma, step_size=step_size, decay=decay)
    elif isinstance(schedule, Schedule):
        if (gamma, step_size, decay) != (None, None, None):
            raise UsageError("gamma, step_size and decay go with a schedule name, not a Schedule object")
        sched = schedule
    else:
        raise UsageError(f"not a learning-rate schedule: {schedule!r}")
    kwargs: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    return OPTIMIZER_CLASSES[name](lr=0.1 if lr is None else lr, schedule=sched, **kwargs)


def optimizer_from_training(training: Mapping[str, Any], lr: float | None = None) -> Optimizer:
    """The optimizer recorded in a model's ``training`` dict (gradient descent when it records none);
    ``lr``, when given, replaces the recorded rate.

    >>> optimizer_from_training({"optimizer": "nesterov", "lr": 0.2, "momentum": 0.5}).options()
    {'optimizer': 'nesterov', 'lr': 0.2, 'momentum': 0.5, 'schedule': 'constant'}
    """
    keys = ("momentum", "beta1", "beta2", "eps", "gamma", "step_size", "decay")
    return make_optimizer(
        str(training.get("optimizer") or "gd"),
        lr if lr is not None else training.get("lr"),
        schedule=str(training.get("schedule") or "constant"),
        **{k: training[k] for k in keys if training.get(k) is not None},
    )
