"""What every plan shares: its inputs, its result, the progress callback, and the state table.

A run's *state table* holds its current parameter row (``iteration, loss, <params>, <optimizer
state>``; :attr:`TrainingProgram.row_columns`). :meth:`Plan.advance` runs some updates from the row of a
given iteration and leaves the new row in the same table, so a run can be cut into chunks (for
validation, early stopping and checkpoints) that give exactly the weights of one uninterrupted run:
the rows never leave the database between chunks.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sqlglot import exp

from ..batches import work_table
from ..engines.base import Capabilities, Engine
from ..errors import EngineError, TrainingError
from ..spec import Weights
from ..sqlexpr import col, num, table
from .program import ITERATION, TrainingProgram

Progress = Callable[[int, float], None]
"""``progress(iterations_done, loss)``: called as iterations complete (per statement)."""


@dataclass
class PlanInput:
    """The statements' ingredients: the program, the prepared data table, start weights, run name."""

    program: TrainingProgram
    data_table: str
    init: Weights
    iterations: int
    run_name: str

    @property
    def data(self) -> exp.Table:
        return table(self.data_table)

    def table_name(self, what: str) -> str:
        return f"{self.run_name}_{what}"


@dataclass
class PlanResult:
    """Final weights and the loss before each update (iteration k's loss is at the weights of k)."""

    weights: Weights
    history: list[tuple[int, float]] = field(default_factory=list)
    statements: int = 0


class Plan:
    """A way of chaining training iterations into SQL statements."""

    name: str = ""
    description: str = ""
    chunks: bool = True
    """Whether :meth:`advance` exists (the article's nested query starts from literals only)."""
    gathers: bool = False
    """Whether its updates are :meth:`~sqlgrad.plans.program.TrainingProgram.gradient_select`
    aggregates, which can gather wide layers' gradients (:attr:`TrainingProgram.gather`)."""

    def statements(self, inp: PlanInput) -> list[exp.Expression]:
        """The statements this plan issues (for reading; repeated ones shown once)."""
        raise NotImplementedError

    def problem(self, caps: Capabilities, iterations: int) -> str | None:
        """Why an engine with these capabilities cannot run this plan for ``iterations`` updates, or
        None (the default: every engine can)."""
        return None

    def advance(
        self,
        engine: Engine,
        inp: PlanInput,
        state: str,
        start: int,
        count: int,
        progress: Progress | None = None,
    ) -> list[tuple[int, float]]:
        """Run updates ``start..start+count-1`` from the row of iteration ``start`` in table ``state``,
        leaving the row of iteration ``start + count`` there (and, where tables take DELETE, only it).
        Returns ``(iteration, loss)`` of each update, the loss at the weights before it."""
        raise NotImplementedError

    def prepare(self, engine: Engine, inp: PlanInput) -> None:
        """Work done once per run before any state table exists (e.g. the long plan's data tables);
        called by :func:`~sqlgrad.plans.driver.drive` and :meth:`run`, paired with :meth:`release`."""

    def release(self, engine: Engine, inp: PlanInput) -> None:
        """Undo :meth:`prepare` (called in a ``finally``, also after a failed or partial prepare)."""

    def first_state(self, inp: PlanInput) -> exp.Expression:
        """The rows of the state table before the first update (iteration 0): here one parameter row;
        a plan with another parameter representation returns its own rows."""
        return inp.program.init_select(inp.init)

    def weights_at(self, engine: Engine, inp: PlanInput, name: str, iteration: int) -> Weights:
        """The weights held in a state table (or a copy of one: checkpoint, best) at ``iteration``."""
        prog = inp.program
        return prog.weights_from_row(prog.param_values(read_state(engine, name, iteration)))

    def run(self, engine: Engine, inp: PlanInput, progress: Progress | None = None) -> PlanResult:
        """The whole run from ``inp.init`` in one chunk."""
        state = inp.table_name("state")
        try:
            self.prepare(engine, inp)
            create_state(engine, state, self.first_state(inp))
            with overflow_is_divergence(engine):
                history = self.advance(engine, inp, state, 0, inp.iterations, progress)
            check_history(history, inp.iterations)
            weights = self.weights_at(engine, inp, state, inp.iterations)
        finally:
            with contextlib.suppress(Exception):
                engine.drop_work_table(state)
            self.release(engine, inp)
        return PlanResult(weights, history)


def at_iteration(k: int, qualifier: str | None = None) -> exp.Expression:
    """``iteration = k``."""
    return exp.EQ(this=col(ITERATION, qualifier), expression=num(k))


def create_state(engine: Engine, name: str, first: exp.Expression) -> None:
    """The state table of a run, holding the row ``first`` (a SELECT of one full parameter row)."""
    engine.execute(work_table(engine, name, first))


def read_state(engine: Engine, name: str, iteration: int) -> tuple:
    """The full parameter row of ``iteration`` in a (one-row-per-iteration) state table."""
    rows = engine.query(exp.select(exp.Star()).from_(table(name)).where(at_iteration(iteration)))
    if len(rows) != 1:
        raise TrainingError(f"internal: {len(rows)} parameter rows for iteration {iteration} in {name}")
    return rows[0]


def keep_only(engine: Engine, name: str, iteration: int) -> None:
    """Delete the rows of other iterations from a state table (where tables take DELETE)."""
    if engine.capabilities.mutable_tables:
        engine.execute(exp.delete(table(name), where=exp.NEQ(this=col(ITERATION), expression=num(iteration))))


@contextlib.contextmanager
def overflow_is_divergence(engine: Engine) -> Iterator[None]:
    """Turn an engine's numeric-overflow error (PostgreSQL, MariaDB raise one where others return
    infinity) into the :class:`TrainingError` of a diverging run."""
    try:
        yield
    except EngineError as err:
        text = str(err)
        if any(f in text for f in engine.capabilities.overflow_errors):
            raise TrainingError(
                f"training diverged: the engine overflowed ({text.split(': ', 1)[-1]}); lower --lr "
                "(no model written)"
            ) from err
        raise


def check_history(history: list[tuple[int, float]], expected: int) -> None:
    """Divergence and truncation checks shared by the plans."""
    if len(history) != expected:
        raise TrainingError(
            f"the engine ran {len(history)} of {expected} iterations (a recursion limit?); no model written"
        )
    for it, loss in history:
        if loss is None or not math.isfinite(loss):
            raise TrainingError(
                f"training diverged at iteration {it}: the loss is {loss}; lower --lr (no model written)"
            )
