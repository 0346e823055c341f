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
    "LONG_BELOW_ROWS",
    "LONG_BELOW_ROWS_WITH_STATE",
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
    strategy: str,
    caps: Capabilities,
    iterations: int,
    program: TrainingProgram | None = None,
    rows: int | None = None,
) -> Plan:
    """The plan for a strategy name; ``auto`` takes ``recursive`` where the engine runs an aggregate in a
    recursive term without a cap that the run would pass (and ``rows`` per update are below the engine's
    ``stepwise_from_rows``), and ``stepwise`` otherwise; and ``long`` when
    ``program`` is too wide for that plan on this engine (:func:`width_problem`) or has enough
    parameters, on few enough ``rows`` per update (the training rows, or the batch size), for ``long``
    to be measured faster (:func:`long_is_faster`). A wide strategy forced on a model too wide for the
    engine is a :class:`~sqlgrad.errors.UsageError`.

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
    >>> duckdb = Capabilities("duckdb", recursive_step="cross", long_from_params=1000)
    >>> program = TrainingProgram(wide, GradientDescent(0.1), duckdb)
    >>> [choose("auto", duckdb, 10, program, rows).name for rows in (None, 1_000, 100_000)]
    ['long', 'long', 'recursive']

    Where the engine runs a recursive statement's updates on one thread (``stepwise_from_rows``), many
    rows per update go to ``stepwise``, which runs on all of them:

    >>> article = ModelSpec(2, (2,), ("relu",), "softmax", 2)
    >>> duckdb = Capabilities("duckdb", recursive_step="cross", stepwise_from_rows=300_000)
    >>> program = TrainingProgram(article, GradientDescent(2.0), duckdb)
    >>> [choose("auto", duckdb, 10, program, rows).name for rows in (100_000, 1_000_000)]
    ['recursive', 'stepwise']
    """
    if strategy == "auto":
        ok = caps.recursive_cte and caps.recursive_step is not None
        many = rows is not None and caps.stepwise_from_rows is not None and rows >= caps.stepwise_from_rows
        if ok and not many and (caps.recursion_limit is None or iterations <= caps.recursion_limit):
            plan = PLANS["recursive"]
        else:
            plan = PLANS["stepwise"]
        if program is not None and (
            long_is_faster(program, caps, rows) or width_problem(plan.name, program, caps, iterations)
        ):
            return PLANS["long"]
        return plan
    try:
        plan = PLANS[strategy]
    except KeyError:
        raise UsageError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}") from None
    unable = plan.problem(caps, iterations)
    if unable:
        raise UsageError(unable)
    problem = width_problem(plan.name, program, caps, iterations) if program is not None else None
    if problem:
        raise UsageError(f"{problem}; use --strategy long (parameters as rows, no column limit)")
    return plan


LONG_BELOW_ROWS = 20_000
"""With gradient descent, ``auto`` gives a network to ``long`` for speed (:func:`long_is_faster`) only
when an update reads fewer rows than this. The long plan's joins cost rows x parameters with a large
constant; the wide form's planning does not grow with the rows. Measured on DuckDB 2.0.1
(``docs/strategies.md``): ``long`` won at 1,000 rows from about 1,000 parameters, the wide form at
20,000 rows for every network measured (up to 2,410 parameters: 9.0 s against 23.2 s for 5 updates) and
at 100,000 rows on the benchmark's 64-32-10 and 32-64-64-2 networks (2,410 and 6,402 parameters: 4x to
5x faster per update)."""

LONG_BELOW_ROWS_WITH_STATE = 100_000
"""The same for an optimizer with state, whose wide form carries a column per state value and longer
updates: measured with Adam on DuckDB 2.0.1, the 64-32-10 network (2,410 parameters) ran 5 updates in
6.6 s ``long`` against 17.6 s wide on 20,000 rows, and in 81 s against 24 s on 100,000 rows (smaller
networks on 20,000 rows: the wide form 1.3x faster at 1,238 parameters, 2x at 608)."""


def long_is_faster(program: TrainingProgram, caps: Capabilities, rows: int | None = None) -> bool:
    """Whether the network has enough parameters for ``long`` to beat the wide form on this engine:
    ``Capabilities.long_from_params`` for gradient descent, ``long_from_params_with_state`` for an
    optimizer with state (measured by ``benchmarks/long.py --sweep``), and, when the number of ``rows``
    an update reads is given (the training rows, or the batch size), fewer than :data:`LONG_BELOW_ROWS`
    (:data:`LONG_BELOW_ROWS_WITH_STATE` with state) of them.

    >>> from sqlgrad.optim import Adam, GradientDescent
    >>> from sqlgrad.spec import ModelSpec
    >>> caps = Capabilities("duckdb", long_from_params=200, long_from_params_with_state=50)
    >>> def net(h, opt):
    ...     return TrainingProgram(ModelSpec(2, (h,), ("relu",), "softmax", 2), opt, caps)
    >>> [long_is_faster(net(h, GradientDescent(0.1)), caps) for h in (2, 20, 60)]
    [False, False, True]
    >>> [long_is_faster(net(h, Adam(0.1)), caps) for h in (2, 20, 60)]
    [False, True, True]
    >>> [long_is_faster(net(60, GradientDescent(0.1)), caps, rows) for rows in (1_000, 20_000)]
    [True, False]
    >>> [long_is_faster(net(60, Adam(0.1)), caps, rows) for rows in (20_000, 100_000)]
    [True, False]
    """
    stateful = bool(program.optimizer.state)
    if rows is not None and rows >= (LONG_BELOW_ROWS_WITH_STATE if stateful else LONG_BELOW_ROWS):
        return False
    limit = caps.long_from_params_with_state if stateful else caps.long_from_params
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
    if strategy == "long" or (caps.max_select_columns is None and caps.max_table_columns is None):
        return None  # without counting: that stages the wide program (seconds for a wide network)
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
