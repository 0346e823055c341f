"""Execution strategies: how the iterations of a training run become SQL statements.

- ``nested``: the article's single query, one nesting level per iteration (fidelity, teaching).
- ``recursive``: one ``WITH RECURSIVE`` statement for the whole run.
- ``stepwise``: one statement per iteration, parameters and history in tables.
- ``long``: one statement per iteration with the parameters as rows ``(layer, i, j, w)``: no column
  limit, so any width trains on every engine (the three above keep one column per parameter).
- ``scripted``: the training loop as one script in the engine's language (PL/pgSQL, BigQuery); never
  picked by ``auto``.

:func:`choose` picks for ``auto`` from the engine's capabilities and the measurements recorded in
``docs/strategies.md``.
"""

from __future__ import annotations

from sqlglot import exp

from ..engines.base import Capabilities
from ..errors import UsageError
from ..spec import Weights
from .base import Plan, PlanInput, PlanResult, Progress
from .long import LongPlan, inline_loss_select, wide_columns
from .nested import NestedPlan
from .program import TrainingProgram
from .recursive import RecursivePlan
from .scripted import ScriptedPlan
from .stepwise import StepwisePlan

PLANS: dict[str, Plan] = {
    p.name: p for p in (NestedPlan(), RecursivePlan(), StepwisePlan(), ScriptedPlan(), LongPlan())
}
STRATEGIES = ("auto", *PLANS)

__all__ = [
    "PLANS",
    "STRATEGIES",
    "Plan",
    "PlanInput",
    "PlanResult",
    "Progress",
    "TrainingProgram",
    "choose",
    "long_is_faster",
    "loss_query",
    "width_problem",
]


def choose(
    strategy: str, caps: Capabilities, iterations: int, program: TrainingProgram | None = None
) -> Plan:
    """The plan for a strategy name; ``auto`` takes ``recursive`` where the engine runs an aggregate in a
    recursive term without a cap that the run would pass, and ``stepwise`` otherwise; and ``long`` when
    ``program`` is too wide for that plan on this engine (:func:`width_problem`) or has enough
    parameters for ``long`` to be measured faster (:func:`long_is_faster`). A wide strategy forced on a
    model too wide for the engine is a :class:`~sqlgrad.errors.UsageError`.

    On DuckDB 2.0 the recursive statement was 2.3x faster per iteration than stepwise on the article's
    network at 100k rows, and stays flat in memory over 1,000 iterations (``docs/strategies.md``).

    >>> from sqlgrad.optim import GradientDescent
    >>> from sqlgrad.spec import ModelSpec
    >>> wide = ModelSpec(64, (32,), ("relu",), "softmax", 10)
    >>> sqlite = Capabilities("sqlite", max_select_columns=2000, max_table_columns=2000)
    >>> choose("auto", sqlite, 10, TrainingProgram(wide, GradientDescent(0.1), sqlite)).name
    'long'
    >>> choose("auto", Capabilities("duckdb", recursive_step="cross"), 10).name
    'recursive'
    """
    if strategy == "auto":
        ok = caps.recursive_cte and caps.recursive_step is not None
        if ok and (caps.recursion_limit is None or iterations <= caps.recursion_limit):
            plan = PLANS["recursive"]
        else:
            plan = PLANS["stepwise"]
        if program is not None and (
            width_problem(plan.name, program, caps, iterations) or long_is_faster(program, caps)
        ):
            return PLANS["long"]
        return plan
    try:
        plan = PLANS[strategy]
    except KeyError:
        raise UsageError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}") from None
    problem = width_problem(plan.name, program, caps, iterations) if program is not None else None
    if problem:
        raise UsageError(f"{problem}; use --strategy long (parameters as rows, no column limit)")
    return plan


def long_is_faster(program: TrainingProgram, caps: Capabilities) -> bool:
    """Whether the network has enough parameters for ``long`` to beat the wide form on this engine:
    ``Capabilities.long_from_params`` for gradient descent, ``long_from_params_with_state`` for an
    optimizer with state (measured by ``benchmarks/long.py --sweep``).

    >>> from sqlgrad.optim import Adam, GradientDescent
    >>> from sqlgrad.spec import ModelSpec
    >>> caps = Capabilities("duckdb", long_from_params=200, long_from_params_with_state=50)
    >>> def net(h, opt):
    ...     return TrainingProgram(ModelSpec(2, (h,), ("relu",), "softmax", 2), opt, caps)
    >>> [long_is_faster(net(h, GradientDescent(0.1)), caps) for h in (2, 20, 60)]
    [False, False, True]
    >>> [long_is_faster(net(h, Adam(0.1)), caps) for h in (2, 20, 60)]
    [False, True, True]
    """
    limit = caps.long_from_params_with_state if program.optimizer.state else caps.long_from_params
    return limit is not None and len(program.param_columns) >= limit


def width_problem(
    strategy: str, program: TrainingProgram, caps: Capabilities, iterations: int = 1
) -> str | None:
    """Why the one-column-per-parameter plan ``strategy`` cannot hold ``program`` on an engine with
    these limits (``Capabilities.max_select_columns`` / ``max_table_columns``), or None when it fits.

    Counted (:func:`~sqlgrad.plans.long.wide_columns`): the parameter row (iteration, loss, parameters,
    optimizer state), the gradient aggregate (a ``SUM`` per parameter), the staged levels; ``stepwise``
    also stores the row in a table; ``nested`` carries the parameters and their window sums side by side
    with one loss column per iteration. ``long`` always fits.
    """
    if strategy == "long":
        return None
    select, tbl = wide_columns(program)
    if strategy == "nested":
        select = len(program.data_columns) + 2 * len(program.param_columns) + iterations + 2
    n = len(program.param_columns)
    what = f"the {strategy} plan keeps one column per parameter ({n} parameters"
    what += f", {len(program.state_columns)} optimizer state values)" if program.state_columns else ")"
    if caps.max_select_columns is not None and select > caps.max_select_columns:
        return (
            f"{what} and needs {select} columns in one select list; {caps.dialect} allows "
            f"{caps.max_select_columns}"
        )
    if strategy == "stepwise" and caps.max_table_columns is not None and tbl > caps.max_table_columns:
        return f"{what} and needs a table of {tbl} columns; {caps.dialect} allows {caps.max_table_columns}"
    return None


def loss_query(program: TrainingProgram, data: exp.Expression, weights: Weights) -> exp.Select:
    """The loss (with penalty) of ``weights`` on the prepared ``data``: the wide form (a one-row table
    of parameters) where it fits the engine's column limits and the network is below the engine's
    ``long_from_params``, else the weights inlined as literals (for the 64-32-10 network on DuckDB,
    2 s to build and run against 9 s for the wide form)."""
    caps = program.capabilities
    if width_problem("recursive", program, caps) is None and not long_is_faster(program, caps):
        return program.loss_select(data, program.init_select(weights).subquery())
    return inline_loss_select(program, data, weights)
