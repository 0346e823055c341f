"""Training control: a run as chunks of updates, with validation, early stopping, checkpoints and resume.

A plan's :meth:`~sqlgrad.plans.base.Plan.advance` runs some updates from the parameter row in the run's
state table and leaves the new row there. The driver cuts the run at the iterations where something has
to happen between statements, and only there (a run with no checks is one chunk: one recursive
statement on DuckDB):

- **checks** every ``eval_every`` updates (default: one epoch): the validation loss and accuracy at the
  current weights, and the early-stopping and tolerance rules on the monitored loss (the validation loss,
  or the mean training loss of the interval without ``--validation``);
- **checkpoints** every ``checkpoint_every`` updates when the run has a name: in one transaction, the
  state row is copied to ``<name>_checkpoint`` and the new history rows appended to ``<name>_history``.

Because parameter rows are copied inside the database and never round-trip through Python, a run cut
into chunks, or killed and resumed from its checkpoint, ends with exactly the weights of one
uninterrupted run.

A named run's tables (all created in the database's current schema, never elsewhere):

- ``<name>_meta``: one row, the run's settings as JSON (a resume with other settings is refused);
- ``<name>_checkpoint``: the parameter row (with optimizer state) of the last checkpoint;
- ``<name>_history``: :data:`HISTORY_COLUMNS`, one row per update;
- ``<name>_best``: with early stopping, the parameter row of the best check so far.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from ..batches import work_table
from ..engines.base import Engine
from ..errors import EngineError, TrainingError, UsageError
from ..spec import Weights
from ..sqlexpr import col, num, table
from .base import Plan, PlanInput, Progress, at_iteration, create_state, keep_only, overflow_is_divergence
from .program import ITERATION

HISTORY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("iteration", "integer"),
    ("epoch", "integer"),
    ("loss", "float"),
    ("val_loss", "float"),
    ("val_accuracy", "float"),
    ("seconds", "float"),
)
"""Columns of a named run's history table: the update's index (0-based; ``loss`` is measured at the
weights before it, on the update's batch), its epoch (1-based), and, on rows that end a check interval,
the validation loss and accuracy after the update (NULL elsewhere and for regression's accuracy);
``seconds`` since the run started, at the end of the update's chunk."""

MAX_NAME = 40
"""Longest run name: ``<name>_checkpoint`` must fit PostgreSQL's 63-byte identifiers."""

Validate = Callable[[Any], dict[str, float | None]]
"""``validate(weights) -> {"val_loss": ..., "val_accuracy": ...}`` at the given weights."""


@dataclass
class Control:
    """How a run is cut and checked.

    Attributes:
        iterations: total updates of the run.
        steps_per_epoch: updates per epoch (1 for full-batch gradient descent).
        eval_every: updates between checks; default one epoch.
        patience: early stopping: stop after this many checks without improvement, keep the best row.
        tolerance: an improvement must exceed this; alone (without ``patience``) the run stops at the
            first check that does not improve by more than it.
        checkpoint_every: updates between checkpoints of a named run (default: at every check and at
            the end).
        name: the run's name (its tables persist); None for an anonymous run.
        resume: continue the named run from its checkpoint.
        config: the run's settings, stored with a named run and compared on resume.
    """

    iterations: int
    steps_per_epoch: int = 1
    eval_every: int | None = None
    patience: int | None = None
    tolerance: float | None = None
    checkpoint_every: int | None = None
    name: str | None = None
    resume: bool = False
    config: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        for label, v in (
            ("--eval-every", self.eval_every),
            ("--early-stopping", self.patience),
            ("--checkpoint-every", self.checkpoint_every),
        ):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise UsageError(f"{label} must be a whole number >= 1, got {v!r}")
        if self.tolerance is not None and not (math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise UsageError(f"--tolerance must be a number >= 0, got {self.tolerance!r}")
        if self.name is not None:
            check_run_name(self.name)
        if self.resume and self.name is None:
            raise UsageError("--resume needs --name: the run to continue")
        if self.checkpoint_every is not None and self.name is None:
            raise UsageError("--checkpoint-every needs --name: checkpoints are tables named after the run")

    @property
    def interval(self) -> int:
        return self.eval_every or self.steps_per_epoch

    @property
    def stopping(self) -> bool:
        return self.patience is not None or self.tolerance is not None


def check_run_name(name: str) -> None:
    """A run name is any text of 1 to :data:`MAX_NAME` characters (it is always quoted)."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME:
        raise UsageError(f"--name must have 1 to {MAX_NAME} characters, got {name!r}")


@dataclass
class Outcome:
    """What a driven run produced."""

    weights: Weights
    """The final weights (the best ones with early stopping)."""
    history: list[dict[str, Any]]
    iterations: int
    """Updates done (fewer than planned when the run stopped early)."""
    stopped: str | None = None
    best_iteration: int | None = None
    resumed_from: int | None = None


class _Stopper:
    """Early stopping and tolerance on the monitored loss, replayable from a stored history."""

    def __init__(self, control: Control) -> None:
        self.control = control
        self.best: float | None = None
        self.best_at: int | None = None
        self.wait = 0
        self.reason: str | None = None

    def observe(self, done: int, value: float | None) -> bool:
        """Record the check after ``done`` updates; True when this is the best row so far."""
        c = self.control
        if value is None or not math.isfinite(value):
            raise TrainingError(f"training diverged: the monitored loss is {value} after {done} updates")
        tol = c.tolerance or 0.0
        improved = self.best is None or value < self.best - tol
        if improved:
            self.best, self.best_at, self.wait = value, done, 0
        else:
            self.wait += 1
        if c.patience is not None and self.wait >= c.patience:
            self.reason = (
                f"early stopping after {done} updates: no improvement over {self.best:.6g} "
                f"(after {self.best_at} updates) in {c.patience} checks"
            )
        elif c.patience is None and c.tolerance is not None and not improved:
            self.reason = f"converged after {done} updates: the loss improved by less than {c.tolerance:g}"
        return improved


class RunStore:
    """The tables of a named run."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.meta, self.checkpoint = f"{name}_meta", f"{name}_checkpoint"
        self.history, self.best = f"{name}_history", f"{name}_best"
        self.created: list[str] = []
        """The tables this store created (the only ones :meth:`drop` may remove)."""

    def exists(self) -> bool:
        return self.engine.table_exists((self.checkpoint,))

    def create(self, config: dict[str, Any], first: exp.Expression) -> None:
        """The run's tables, refused when any of them exists: a run of that name, or a table of the
        user's that a new run would write into."""
        if self.exists() or self.engine.table_exists((self.meta,)):
            raise UsageError(
                f"a run named {self.name!r} already exists in this database: pass --resume to continue "
                "it, or choose another --name"
            )
        for t in (self.history, self.best):
            if self.engine.table_exists((t,)):
                raise UsageError(
                    f"--name {self.name!r} needs the table {t!r}, which already exists and is not a run's: "
                    "choose another --name"
                )
        settings = [(json.dumps(config, sort_keys=True),)]
        try:
            self._create(
                self.meta, lambda: self.engine.create_table(self.meta, [("config", "text")], settings)
            )
        except EngineError as err:  # another run of that name got there first
            if self.engine.table_exists((self.meta,)):
                raise UsageError(
                    f"a run named {self.name!r} was started at the same time in this database; choose "
                    "another --name"
                ) from err
            raise
        try:
            self._create(self.history, lambda: self.engine.create_table(self.history, HISTORY_COLUMNS, []))
            create = exp.Create(this=table(self.checkpoint), kind="TABLE", expression=first)
            self._create(self.checkpoint, lambda: self.engine.execute(create))
        except BaseException:
            self.drop()
            raise

    def _create(self, name: str, make: Callable[[], Any]) -> None:
        make()
        self.created.append(name)

    def load(self, config: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        """The checkpoint's iteration and the history before it; refuses other settings."""
        if not self.exists():
            raise UsageError(f"no run named {self.name!r} to resume in this database")
        stored = json.loads(self.engine.scalar(exp.select(col("config")).from_(table(self.meta))))
        diff = sorted(k for k in set(stored) | set(config) if stored.get(k) != config.get(k))
        if diff:
            raise UsageError(
                f"run {self.name!r} was started with other settings ({', '.join(diff)}); resume it with "
                "the same ones"
            )
        start = self.engine.scalar(exp.select(exp.Max(this=col(ITERATION))).from_(table(self.checkpoint)))
        names = [c for c, _ in HISTORY_COLUMNS]
        rows = self.engine.query(
            exp.select(*(col(c) for c in names))
            .from_(table(self.history))
            .where(exp.LT(this=col(ITERATION), expression=num(int(start))))
            .order_by(col(ITERATION))
        )
        seen: dict[int, dict[str, Any]] = {}
        for r in rows:  # engines without transactions may hold a row twice after a crash
            seen[int(r[0])] = {
                n: (int(v) if n in ("iteration", "epoch") else v) for n, v in zip(names, r, strict=True)
            }
        return int(start), [seen[k] for k in sorted(seen)]

    def save(self, state: str, done: int, rows: Sequence[dict[str, Any]]) -> None:
        """The state row of iteration ``done`` and the new history rows, in one transaction (history
        first: where there are no transactions, a crash in between leaves rows that a resume skips)."""
        eng = self.engine
        with eng.transaction():
            if rows:
                if eng.capabilities.mutable_tables:
                    since = exp.GTE(this=col(ITERATION), expression=num(rows[0]["iteration"]))
                    eng.execute(exp.delete(table(self.history), where=since))
                eng.execute(_insert_values(self.history, rows))
            row = exp.select(exp.Star()).from_(table(state)).where(at_iteration(done))
            eng.execute(exp.insert(row, table(self.checkpoint)))
            keep_only(eng, self.checkpoint, done)

    def drop(self) -> None:
        """Remove the tables this store created (never one it found)."""
        for t in reversed(self.created):
            with contextlib.suppress(Exception):
                self.engine.drop_table(t)
        self.created = []


def _insert_values(name: str, rows: Sequence[dict[str, Any]]) -> exp.Expression:
    names = [c for c, _ in HISTORY_COLUMNS]

    def lit(v: Any) -> exp.Expression:
        if v is None:
            return exp.Null()
        return num(int(v)) if isinstance(v, int) else num(float(v))

    values = exp.Values(expressions=[exp.Tuple(expressions=[lit(r.get(n)) for n in names]) for r in rows])
    target = exp.Schema(this=table(name), expressions=[exp.to_identifier(n, quoted=True) for n in names])
    return exp.insert(values, target)


def drive(
    engine: Engine,
    plan: Plan,
    inp: PlanInput,
    control: Control,
    validate: Validate | None = None,
    progress: Progress | None = None,
) -> Outcome:
    """Run ``inp`` with ``plan`` under ``control``; returns the final (or best) weights."""
    control.check()
    state, best_table = inp.table_name("state"), inp.table_name("best")
    store = RunStore(engine, control.name) if control.name else None
    if store is not None:
        best_table = store.best
    stopper = _Stopper(control)
    checking = control.stopping or validate is not None
    history: list[dict[str, Any]] = []
    start, offset = 0, 0.0
    t0 = time.perf_counter()
    created_store = False
    try:
        plan.prepare(engine, inp)
        if store is not None and control.resume:
            start, history = store.load(control.config)
            offset = next((h["seconds"] for h in reversed(history) if h.get("seconds") is not None), 0.0)
            create_state(
                engine,
                state,
                exp.select(exp.Star()).from_(table(store.checkpoint)).where(at_iteration(start)),
            )
            if checking:
                _replay(stopper, control, history, start, validate is not None)
        else:
            if store is not None:
                store.create(control.config, plan.first_state(inp))
                created_store = True
            create_state(engine, state, plan.first_state(inp))
        done, saved = start, start
        total = control.iterations
        while done < total and stopper.reason is None:
            stop_at = total
            if checking:
                stop_at = min(stop_at, _next_multiple(done, control.interval))
            if store is not None and control.checkpoint_every:
                stop_at = min(stop_at, _next_multiple(done, control.checkpoint_every))
            with overflow_is_divergence(engine):
                losses = plan.advance(engine, inp, state, done, stop_at - done, progress)
            rows = [
                {
                    "iteration": k,
                    "epoch": k // control.steps_per_epoch + 1,
                    "loss": v,
                    "val_loss": None,
                    "val_accuracy": None,
                    "seconds": None,
                }
                for k, v in losses
            ]
            history.extend(rows)
            done = stop_at
            if checking and (done % control.interval == 0 or done == total):
                metrics: dict[str, float | None] = {}
                if validate is not None:
                    metrics = validate(plan.weights_at(engine, inp, state, done))
                    history[-1].update(metrics)
                monitored = (
                    metrics.get("val_loss") if validate is not None else _mean_loss(history, done, control)
                )
                if stopper.observe(done, monitored) and control.patience is not None:
                    made = _keep_best(engine, state, best_table, done, persistent=store is not None)
                    if made and store is not None:
                        store.created.append(best_table)
            history[-1]["seconds"] = round(offset + time.perf_counter() - t0, 6)
            if store is not None and (
                stopper.reason is not None
                or done == total
                or (control.checkpoint_every and done % control.checkpoint_every == 0)
                or (not control.checkpoint_every and checking and done % control.interval == 0)
            ):
                store.save(state, done, [h for h in history if h["iteration"] >= saved])
                saved = done
        if control.patience is not None and stopper.best_at is not None and stopper.best_at != done:
            final = plan.weights_at(engine, inp, best_table, stopper.best_at)
        else:
            final = plan.weights_at(engine, inp, state, done)
        return Outcome(
            weights=final,
            history=history,
            iterations=done,
            stopped=stopper.reason,
            best_iteration=stopper.best_at if control.patience is not None else None,
            resumed_from=start if control.resume else None,
        )
    except BaseException:
        if created_store and store is not None and not history:
            store.drop()  # nothing was trained: leave no run behind
        raise
    finally:
        with contextlib.suppress(Exception):
            engine.drop_work_table(state)
        if store is None:
            with contextlib.suppress(Exception):
                engine.drop_work_table(best_table)
        plan.release(engine, inp)


def _next_multiple(done: int, every: int) -> int:
    return (done // every + 1) * every


def _mean_loss(history: list[dict[str, Any]], done: int, control: Control) -> float:
    """The mean training loss of the updates of the check interval ending at ``done``."""
    first = done - ((done - 1) % control.interval + 1)
    values = [h["loss"] for h in history if first <= h["iteration"] < done]
    return sum(values) / len(values)


def _replay(
    stopper: _Stopper, control: Control, history: list[dict[str, Any]], start: int, val: bool
) -> None:
    """Rebuild the early-stopping state of a resumed run from its stored history."""
    for h in history:
        done = h["iteration"] + 1
        if done % control.interval == 0 and done <= start:
            stopper.observe(done, h["val_loss"] if val else _mean_loss(history, done, control))


def _keep_best(engine: Engine, state: str, best: str, done: int, persistent: bool) -> bool:
    """Copy the state row of ``done`` into the best-row table (created on first use: a plain table of
    a named run, so that a resume finds it, else a temporary one); True when it was created."""
    row = exp.select(exp.Star()).from_(table(state)).where(at_iteration(done))
    if not engine.table_exists((best,)):
        create = exp.Create(this=table(best), kind="TABLE", expression=row)
        engine.execute(create if persistent else work_table(engine, best, row))
        return True
    with engine.transaction():
        engine.execute(exp.insert(row, table(best)))
        keep_only(engine, best, done)
    return False
