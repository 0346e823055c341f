"""What every plan shares: its inputs, its result, and the progress callback."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from ..engines.base import Engine
from ..errors import TrainingError
from ..spec import Weights
from ..sqlexpr import table
from .program import TrainingProgram

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

    def statements(self, inp: PlanInput) -> list[exp.Expression]:
        """The statements this plan issues (for reading; repeated ones shown once)."""
        raise NotImplementedError

    def run(self, engine: Engine, inp: PlanInput, progress: Progress | None = None) -> PlanResult:
        raise NotImplementedError


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
