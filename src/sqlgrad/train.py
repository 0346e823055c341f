"""Training and scoring, end to end: data source -> preparation -> spec -> graph -> plan -> engine -> model.

>>> import duckdb, numpy as np
>>> from sqlgrad.engines.duckdb import DuckDBEngine
>>> eng = DuckDBEngine()
>>> _ = eng.connection.execute(
...     "CREATE TABLE pts AS SELECT i / 10.0 - 5 AS x, CASE WHEN i >= 50 THEN 'hi' ELSE 'lo' END AS label "
...     "FROM range(100) t(i)")
>>> model = train("pts", "label", hidden=[3], lr=0.5, iterations=50, db=eng)
>>> model.classes, model.training["metrics"]["accuracy"] > 0.9
(['hi', 'lo'], True)
>>> [r[-3] for r in predict(model, "pts", db=eng)[1][:2]]
['lo', 'lo']
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlglot import exp

from .batches import BatchSchedule, create_values_table, split_rows
from .data import (
    MAX_CATEGORIES,
    DataSource,
    PreparedData,
    PrepOptions,
    fold_standardization,
    needs_section,
    prepare,
    unfold_standardization,
)
from .engines import Engine, connect
from .errors import SpecError, UsageError
from .model import Model
from .optim import Optimizer, Schedule, make_optimizer
from .plans import Plan, PlanInput, PlanResult, Progress, TrainingProgram, choose, loss_query
from .plans.base import check_history
from .plans.driver import Control, drive
from .plans.program import BATCH_COLUMNS, ROW_KEY, SAMPLE_WEIGHT
from .sources import Query, describe_data, open_source
from .spec import ModelSpec, Weights, build_spec, init_weights
from .sqlexpr import alias, case, col, eq, num, table


def _engine(db: str | Engine | None) -> tuple[Engine, bool]:
    if isinstance(db, Engine):
        return db, False
    return connect(db), True


def _optimizer(
    optimizer: str | Optimizer, lr: float | None, schedule: str | Schedule, **options: Any
) -> Optimizer:
    """The optimizer of a run: an :class:`Optimizer` as given, or one built by name."""
    if isinstance(optimizer, Optimizer):
        given = [k for k, v in {"lr": lr, **options}.items() if v is not None]
        if schedule != "constant":
            given.append("schedule")
        if given:
            raise UsageError(
                f"an optimizer object carries its own settings; do not also pass {', '.join(given)}"
            )
        return optimizer
    if not isinstance(optimizer, str):
        raise UsageError(f"optimizer must be a name or an Optimizer, got {optimizer!r}")
    return make_optimizer(optimizer, lr, schedule=schedule, **options)


def new_run_name() -> str:
    """A fresh prefix for a run's tables: ``sqlgrad_<12 hex digits>``."""
    return f"sqlgrad_{uuid.uuid4().hex[:12]}"


def train(
    data: str | Query | Any,
    target: str,
    *,
    features: Sequence[str] | None = None,
    hidden: Sequence[int] = (),
    activation: str | Sequence[str] = "relu",
    task: str = "auto",
    head: str | None = None,
    lr: float | None = None,
    l2: float = 0.0,
    l1: float = 0.0,
    iterations: int | None = None,
    optimizer: str | Optimizer = "gd",
    momentum: float | None = None,
    beta1: float | None = None,
    beta2: float | None = None,
    eps: float | None = None,
    schedule: str | Schedule = "constant",
    gamma: float | None = None,
    step_size: int | None = None,
    decay: float | None = None,
    init: Model | str | None = None,
    seed: int = 0,
    strategy: str = "auto",
    db: str | Engine | None = None,
    progress: Progress | None = None,
    standardize: bool = False,
    exclude: Sequence[str] = (),
    max_categories: int = MAX_CATEGORIES,
    impute: str | None = None,
    drop_nulls: bool = False,
    batch_size: int | None = None,
    epochs: int | None = None,
    validation: float = 0.0,
    early_stopping: int | None = None,
    tolerance: float | None = None,
    eval_every: int | None = None,
    class_weight: str | dict | None = None,
    name: str | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
) -> Model:
    """Train a multi-layer perceptron on ``data`` (a table, view or file) inside the database.

    Args:
        data: table or view name in ``db``; a CSV/Parquet/JSON path (engines that read files); a
            :class:`~sqlgrad.sources.Query` (SQL text, the one input read as SQL); or a pandas or polars
            data frame or an Arrow table (:mod:`sqlgrad.sources`).
        target: the column to predict.
        features: feature columns; default every column but the target (and ``exclude``). Numeric
            columns are inputs as they are (or standardised), booleans 0/1, text columns one-hot.
        hidden: hidden layer widths, e.g. ``[16, 8]``; empty for a linear or logistic model.
        activation: one hidden activation for all layers, or one per layer.
        task: ``auto`` (from the target's type), ``classification`` or ``regression``.
        head: ``softmax`` (default for classification) or ``sigmoid`` (binary); regression is ``identity``.
        lr: base learning rate (default 0.1).
        l2: L2 penalty ``0.5 * l2 * sum(W*W)`` on weight matrices.
        l1: L1 penalty ``l1 * sum(|W|)`` on weight matrices (subgradient ``l1 * sign(W)``).
        iterations: number of updates (default 100; or give ``epochs``).
        optimizer: ``gd``, ``momentum``, ``nesterov`` or ``adam`` (conventions in :mod:`sqlgrad.optim`),
            or an :class:`~sqlgrad.optim.Optimizer` object, which then carries the rate, the
            hyperparameters and the schedule (the arguments for those must be left unset).
        momentum: ``momentum``/``nesterov``: the momentum ``mu`` (default 0.9).
        beta1, beta2, eps: ``adam``: moment decays and the term added to ``sqrt(v_hat)`` (defaults 0.9,
            0.999, 1e-8).
        schedule: learning rate per update ``t`` (0-based): ``constant``; ``step``
            (``lr * gamma ** floor(t / step_size)``, ``gamma`` default 0.1); ``exponential``
            (``lr * gamma ** t``); ``inverse-time`` (``lr / (1 + decay * t)``); or a
            :class:`~sqlgrad.optim.Schedule`.
        gamma, step_size, decay: the schedule's parameters. A hyperparameter that the chosen optimizer
            or schedule does not use is an error.
        init: a model (or the path of a model/initial-weights file) giving the architecture and the
            starting weights; then ``hidden``/``activation``/``head`` are taken from it.
        seed: seed of the He/Glorot initialisation when ``init`` is not given.
        strategy: ``auto``, ``nested``, ``recursive`` or ``stepwise`` (see :mod:`sqlgrad.plans`).
        db: a database URL (default: in-memory DuckDB), an open :class:`~sqlgrad.engines.Engine`, or a
            DuckDB connection or SparkSession you hold (used, never closed: :func:`sqlgrad.engines.connect`).
        progress: called with ``(iterations_done, loss)`` as training advances.
        standardize: train on ``(x - mean) / std`` of each numeric feature (mean and population std
            computed in SQL); the model folds it into its first layer, so it still scores raw rows.
            Off by default here (the ``sqlgrad train`` command turns it on unless ``--init`` is given).
            With ``init``, the initial weights are taken as acting on raw inputs and converted.
        exclude: columns left out when ``features`` is not given (e.g. ids).
        max_categories: text features: how many of the most frequent values get their own input; the
            others share an ``other`` input.
        impute: fill NULL features with a value computed in SQL and kept in the model: ``mean``,
            ``median`` or ``most-frequent`` (boolean and text features: always the most frequent
            value). Default: a NULL is an error.
        drop_nulls: skip rows with a NULL in the target or in a feature that is not imputed.
        batch_size: train in mini-batches of this many rows (default: full batch). Batches are drawn in
            SQL from ``seed``, reshuffled each epoch, the same on every engine (:mod:`sqlgrad.batches`).
        epochs: passes over the training rows (``iterations = epochs * ceil(rows / batch_size)``);
            not with ``iterations``.
        validation: hold out this fraction of the rows (reproducible from ``seed``); their loss and
            accuracy are measured at every check and kept in the history.
        early_stopping: stop after this many checks without improvement of the validation loss (the
            training loss without ``validation``) by more than ``tolerance``; the best weights are kept.
        tolerance: minimum improvement; alone, the run stops at the first check that improves less.
        eval_every: updates between checks (default one epoch; one update in full batch).
        class_weight: ``"balanced"`` (``n / (classes * n_class)``, from all rows) or ``{label: weight}``:
            the loss becomes ``SUM(w * loss) / SUM(w)``.
        name: name the run: its history, checkpoints and settings persist as tables ``<name>_history``,
            ``<name>_checkpoint``, ``<name>_meta`` (``<name>_best``) in the database.
        checkpoint_every: with ``name``: updates between checkpoints (default: every check and the end).
        resume: with ``name``: continue the run from its last checkpoint (same data and settings); it
            ends with exactly the weights of an uninterrupted run.

    Raises :class:`~sqlgrad.errors.TrainingError` when the loss becomes NaN or infinite (divergence).

    >>> from sqlgrad.engines.duckdb import DuckDBEngine
    >>> from sqlgrad.optim import Nesterov
    >>> eng = DuckDBEngine()
    >>> _ = eng.connection.execute(
    ...     "CREATE TABLE line AS SELECT i / 10.0 AS x, 3 * (i / 10.0) - 1 AS y FROM range(50) t(i)")
    >>> m = train("line", "y", task="regression", optimizer="adam", lr=0.1, schedule="inverse-time",
    ...           decay=0.01, iterations=300, db=eng)
    >>> m.training["optimizer"], m.training["beta2"], m.training["decay"], m.training["metrics"]["r2"] > 0.99
    ('adam', 0.999, 0.01, True)
    >>> m = train("line", "y", task="regression", optimizer=Nesterov(0.01, momentum=0.8), iterations=200,
    ...           db=eng)
    >>> m.training["optimizer"], m.training["momentum"], m.training["metrics"]["r2"] > 0.99
    ('nesterov', 0.8, True)
    """
    if iterations is not None and epochs is not None:
        raise UsageError("give iterations or epochs, not both")
    for label, v in (("iterations", iterations), ("epochs", epochs), ("batch_size", batch_size)):
        least = 0 if label == "iterations" else 1
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < least):
            raise UsageError(f"{label} must be a whole number >= {least}, got {v!r}")
    if not (isinstance(validation, int | float) and 0 <= validation < 1):
        raise UsageError(f"validation must be a fraction in [0, 1), got {validation!r}")
    control = Control(
        iterations=0,
        eval_every=eval_every,
        patience=early_stopping,
        tolerance=tolerance,
        checkpoint_every=checkpoint_every,
        name=name,
        resume=bool(resume),
    )
    control.check()
    opt = _optimizer(
        optimizer,
        lr,
        momentum=momentum,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        schedule=schedule,
        gamma=gamma,
        step_size=step_size,
        decay=decay,
    )
    options = PrepOptions(
        standardize=bool(standardize),
        impute=impute,
        drop_nulls=bool(drop_nulls),
        max_categories=max_categories,
        exclude=(exclude,) if isinstance(exclude, str) else tuple(exclude or ()),
    )
    options.check()
    start_model = Model.load(init) if isinstance(init, str) else init
    engine, owned = _engine(db)
    run = new_run_name()
    data_table = f"{run}_data"
    sources = contextlib.ExitStack()
    try:
        src = sources.enter_context(open_source(engine, data, run))
        if start_model is not None:
            if not features and start_model.features and options.exclude:
                # the model names its features: --exclude may only confirm that others are left out
                clash = [c for c in options.exclude if c in start_model.features]
                if clash:
                    raise UsageError(
                        f"--exclude names {', '.join(map(repr, clash))}, a feature of the starting model"
                    )
                options = replace(options, exclude=())
            features = features or start_model.features or None
            head = start_model.head if start_model.head != "identity" else None
            if task == "auto":
                task = start_model.task
        prep = prepare(
            engine,
            src,
            target,
            features,
            task,
            head,
            data_table,
            classes=start_model.classes if start_model is not None else None,
            options=options,
            encoding=start_model.preprocessing if start_model is not None else None,
        )
        if start_model is not None:
            spec = build_spec(
                prep.n_inputs,
                start_model.spec.hidden,
                start_model.activations,
                prep.head,
                prep.n_outputs,
                l2,
                l1,
            )
            if start_model.spec.layer_sizes != spec.layer_sizes:
                raise SpecError(
                    f"the initial weights are for a {'-'.join(map(str, start_model.spec.layer_sizes))} "
                    f"network, the data needs {'-'.join(map(str, spec.layer_sizes))}"
                )
            # a model's weights act on raw inputs: express them over this run's standardised ones
            weights: Weights = unfold_standardization(start_model.weights, prep.preprocessing)
        else:
            spec = build_spec(prep.n_inputs, hidden, activation, prep.head, prep.n_outputs, l2, l1)
            weights = init_weights(spec, seed)
        weighted = class_weight is not None
        train_table, valid_table, n_train = data_table, None, prep.n_rows
        if batch_size is not None or validation or weighted:
            extra = [alias(class_weights(engine, prep, class_weight), SAMPLE_WEIGHT)] if weighted else []
            split = split_rows(
                engine, data_table, data_columns(spec), prep.n_rows, validation, seed, run, ROW_KEY, extra
            )
            train_table, valid_table, n_train = split.train_table, split.valid_table, split.n_train
        schedule = BatchSchedule(seed, n_train, batch_size) if batch_size is not None else None
        steps = schedule.steps_per_epoch if schedule is not None else 1
        total = epochs * steps if epochs is not None else (100 if iterations is None else iterations)
        control.iterations, control.steps_per_epoch = total, steps
        batch_table = None
        if schedule is not None and total > 0:
            batch_table = f"{run}_batches"
            # one row per update, and one more: the schedule of the update after the last one, which
            # the last row carries (the training statements join the schedule with an inner join)
            create_values_table(engine, batch_table, BATCH_COLUMNS, schedule.rows(0, total + 1))
        program = TrainingProgram(spec, opt, engine.capabilities, batch_table=batch_table, weighted=weighted)
        per_update = min(batch_size, n_train) if batch_size is not None else n_train
        plan = choose(strategy, engine.capabilities, total, program, rows=per_update)
        if plan.gathers:
            program = program.gathering(per_update, engine.memory_limit())
        inp = PlanInput(program, train_table, weights, total, run)
        control.config = _run_config(
            src.label if src.query is None else src.query.sql(engine.capabilities.dialect),
            target,
            prep,
            spec,
            opt,
            l2,
            l1,
            seed,
            options,
            batch_size,
            validation,
            class_weight,
            control,
            start_model is not None,
        )
        validate = None
        if valid_table is not None:
            val_prep = replace(prep, table=valid_table)

            def validate(w: Weights) -> dict[str, float | None]:
                acts = list(spec.activations)
                m = Model(prep.features, target, prep.task, prep.head, acts, w, prep.classes)
                got = evaluate_prepared(engine, m, val_prep)
                return {"val_loss": got.get("log_loss", got.get("mse")), "val_accuracy": got.get("accuracy")}

        if progress:
            progress(0, float("nan"))
        t0 = time.perf_counter()
        with engine.training_settings():
            if plan.chunks:
                outcome = drive(engine, plan, inp, control, validate, progress)
                final_weights = outcome.weights
                entries = [
                    {k: v for k, v in h.items() if v is not None and k != "seconds"} for h in outcome.history
                ]
                done = outcome.iterations
            else:
                drive_check(plan, control, validate, batch_table, weighted)
                result = plan.run(engine, inp, progress) if total > 0 else PlanResult(weights, [], 0)
                final_weights = result.weights
                entries = [{"iteration": i, "loss": v} for i, v in result.history]
                outcome, done = None, total
            seconds = time.perf_counter() - t0
            final_loss = engine.scalar(loss_query(program, table(train_table), final_weights))
        # the plans check the loss before every update; this checks the loss after the last one
        check_history([(done, final_loss)], 1)
        model = Model(
            features=prep.features,
            target=target,
            task=prep.task,
            head=prep.head,
            activations=list(spec.activations),
            weights=final_weights,
            classes=prep.classes,
            l2=l2,
            l1=l1,
            history=[*entries, {"iteration": done, "loss": final_loss}],
        )
        growth = loss_growth(model.history)
        if growth is not None:
            prep.notes.append(growth)
        train_prep = replace(prep, table=train_table)
        metrics = evaluate_prepared(engine, model, train_prep)
        val_metrics = None
        if valid_table is not None:
            val_metrics = evaluate_prepared(engine, model, replace(prep, table=valid_table))
        if needs_section(prep.preprocessing):
            model.preprocessing = prep.preprocessing
            model.weights = fold_standardization(final_weights, prep.preprocessing)
        model.training = {
            "engine": engine.url.split("://", 1)[0],
            "strategy": plan.name,
            **opt.options(),
            "l2": l2,
            "l1": l1,
            "iterations": done,
            "seed": None if start_model is not None and batch_size is None and not validation else seed,
            "rows": n_train,
            "seconds": round(seconds, 4),
            "loss": final_loss,
            "metrics": metrics,
            "notes": prep.notes,
        }
        extras = {
            "batch_size": batch_size,
            "epochs": done / steps if batch_size is not None else None,
            "validation": validation or None,
            "validation_rows": prep.n_rows - n_train if validation else None,
            "validation_metrics": val_metrics,
            "class_weight": class_weight,
            "early_stopping": early_stopping,
            "tolerance": tolerance,
            "name": name,
            "stopped": outcome.stopped if outcome else None,
            "best_iteration": outcome.best_iteration if outcome else None,
            "resumed_from": outcome.resumed_from if outcome else None,
            "gathered_layers": sorted(leaf.attrs[0] for leaf in program.gathered) or None,
        }
        model.training.update({k: v for k, v in extras.items() if v is not None})
        return model
    finally:
        for t in (data_table, f"{run}_train", f"{run}_valid", f"{run}_batches"):
            with contextlib.suppress(Exception):
                engine.drop_work_table(t)
        sources.close()
        if owned:
            engine.close()


LOSS_GROWTH = 100.0
"""A run whose final loss is this many times its first is reported as diverging (in the model's notes)."""


def loss_growth(history: Sequence[dict[str, Any]]) -> str | None:
    """A note when the loss ended far above where it started: a learning rate too high diverges slowly
    when the loss stays finite (``--lr 1e6`` ends near 1e207), which the NaN check does not catch.

    >>> loss_growth([{"iteration": 0, "loss": 0.7}, {"iteration": 50, "loss": 3e9}])
    'the loss grew from 0.7 to 3e+09 in 50 updates: training diverged; lower --lr'
    >>> loss_growth([{"iteration": 0, "loss": 0.7}, {"iteration": 50, "loss": 0.2}]) is None
    True
    """
    losses = [(h["iteration"], h["loss"]) for h in history if h.get("loss") is not None]
    if len(losses) < 2:
        return None
    (first_it, first), (last_it, last) = losses[0], losses[-1]
    if not (math.isfinite(first) and math.isfinite(last)) or last <= LOSS_GROWTH * max(first, 1e-12):
        return None
    return (
        f"the loss grew from {first:.3g} to {last:.3g} in {last_it - first_it} updates: training diverged; "
        "lower --lr"
    )


def data_columns(spec: ModelSpec) -> list[str]:
    """The prepared table's columns: the inputs ``x_0..`` and ``y``."""
    from .autodiff import build_graph
    from .lowering import leaf_columns

    return [*leaf_columns(build_graph(spec).x), "y"]


def class_weights(engine: Engine, prep: PreparedData, given: str | dict) -> exp.Expression:
    """The sample weight of a row from its class: ``balanced`` is ``n / (classes * n_class)``."""
    if prep.task != "classification" or not prep.classes:
        raise UsageError("class weights apply to classification only")
    k = len(prep.classes)
    if given == "balanced":
        counts = dict(
            engine.query(
                exp.select(col("y"), exp.Count(this=exp.Star())).from_(table(prep.table)).group_by(col("y"))
            )
        )
        weights = [prep.n_rows / (k * counts.get(i, counts.get(float(i), 0)) or 1) for i in range(k)]
    elif isinstance(given, dict):
        by_label = {str(c): i for i, c in enumerate(prep.classes)}
        unknown = [str(c) for c in given if str(c) not in by_label]
        if unknown:
            raise UsageError(f"class weights name labels that are not classes: {', '.join(unknown)}")
        weights = [1.0] * k
        for label, w in given.items():
            if not (isinstance(w, int | float) and not isinstance(w, bool) and math.isfinite(w) and w > 0):
                raise UsageError(f"the weight of class {label!r} must be a number > 0, got {w!r}")
            weights[by_label[str(label)]] = float(w)
    else:
        raise UsageError(f"class_weight must be 'balanced' or a mapping label -> weight, got {given!r}")
    return case([(eq(col("y"), num(i)), num(float(w))) for i, w in enumerate(weights)], num(1.0))


def drive_check(
    plan: Plan, control: Control, validate: object, batch_table: str | None, weighted: bool
) -> None:
    """Refuse what a single-query plan cannot do (it has no state between updates)."""
    if control.name or control.stopping or validate is not None or batch_table is not None or weighted:
        raise UsageError(
            f"the {plan.name} plan runs the whole training at once: it has no mini-batches, validation, "
            "early stopping, class weights or named runs; use --strategy auto, recursive, stepwise or "
            "long (parameters as rows, for a wide network)"
        )


def _run_config(
    data: str,
    target: str,
    prep: PreparedData,
    spec: ModelSpec,
    opt: Optimizer,
    l2: float,
    l1: float,
    seed: int,
    options: PrepOptions,
    batch_size: int | None,
    validation: float,
    class_weight: object,
    control: Control,
    warm: bool,
) -> dict[str, Any]:
    """The settings a resumed run must share with the run it continues (everything but its length)."""
    return json.loads(
        json.dumps(
            {
                "data": data,
                "target": target,
                "features": prep.features,
                "rows": prep.n_rows,
                "layers": list(spec.layer_sizes),
                "activations": list(spec.activations),
                "head": spec.head,
                "optimizer": opt.options(),
                "l2": l2,
                "l1": l1,
                "seed": seed,
                "preparation": [p.to_dict() for p in prep.preprocessing],
                "standardize": options.standardize,
                "batch_size": batch_size,
                "validation": validation,
                "class_weight": class_weight,
                "eval_every": control.eval_every,
                "early_stopping": control.patience,
                "tolerance": control.tolerance,
                "warm_start": warm,
            },
            default=str,
        )
    )


def evaluate_prepared(engine: Engine, model: Model, prep: PreparedData) -> dict[str, Any]:
    caps = engine.capabilities
    row_sel = model.evaluate_select(
        table(prep.table), native_tanh=caps.native_tanh, vector_dot=caps.vector_dot
    )
    result = engine.query(row_sel)
    names = [e.alias_or_name for e in row_sel.expressions]
    return {
        n: (int(v) if n == "n" else (float(v) if v is not None else None))
        for n, v in zip(names, result[0], strict=True)
    }


def evaluate(model: Model, data: str | Query | Any, db: str | Engine | None = None) -> dict[str, Any]:
    """Metrics of ``model`` on ``data`` computed in SQL (accuracy and log loss, or MSE, RMSE, MAE, R²).

    ``data`` is read as in :func:`train`. Labels not among the model's classes are an error; the data's
    features are checked like in training.
    """
    engine, owned = _engine(db)
    run = new_run_name()
    name = f"{run}_eval"
    sources = contextlib.ExitStack()
    try:
        src = sources.enter_context(open_source(engine, data, run))
        _check_model_columns(engine, model, src)
        prep = prepare(
            engine,
            src,
            model.target,
            model.features,
            model.task,
            None if model.head == "identity" else model.head,
            name,
            classes=model.classes,
            encoding=model.encoding,
        )
        return evaluate_prepared(engine, model, prep)
    finally:
        with contextlib.suppress(Exception):
            engine.drop_work_table(name)
        sources.close()
        if owned:
            engine.close()


ENCODING_KINDS = {
    "numeric": (("integer", "float", "boolean"), "a number"),
    "boolean": (("boolean", "integer"), "a boolean"),
    "categorical": (("text",), "text"),
}
"""Column kinds each feature encoding can read at prediction time, and how to name them."""


def _check_model_columns(engine: Engine, model: Model, src: DataSource) -> list[str]:
    cols = engine.describe(src.relation())
    names = [c.name for c in cols]
    by_name = {c.name: c for c in cols}
    for p in model.encoding:
        f = p.column
        if f not in by_name:
            raise UsageError(f"{src.label} has no column {f!r}, which the model needs")
        kinds, wanted = ENCODING_KINDS[p.kind]
        if by_name[f].kind not in kinds:
            raise UsageError(f"column {f!r} of {src.label} is {by_name[f].type}; the model needs {wanted}")
    return names


def predict_query(model: Model, data: str | Query, db: str | Engine | None = None) -> exp.Select:
    """The scoring query for ``data`` (a table, view, file or :class:`~sqlgrad.sources.Query`): its
    columns plus the prediction columns. A data frame exists only during a call: use :func:`predict`."""
    engine, owned = _engine(db)
    try:
        if not isinstance(data, str | Query):
            raise UsageError(
                f"a query or view scoring a {describe_data(data)} would not outlive this call: "
                "use predict(), or load the rows into a table"
            )
        with open_source(engine, data, new_run_name()) as src:
            return _scoring_query(engine, model, src)
    finally:
        if owned:
            engine.close()


def _scoring_query(engine: Engine, model: Model, src: DataSource) -> exp.Select:
    names = _check_model_columns(engine, model, src)
    caps = engine.capabilities
    return model.predict_select(
        names, src.relation(), native_tanh=caps.native_tanh, vector_dot=caps.vector_dot
    )


def view_statement(name: str, query: exp.Select, replace: bool = False) -> exp.Create:
    """``CREATE [OR REPLACE] VIEW name AS query`` (``name`` may be ``schema.view``; always quoted)."""
    parts = name.split(".") if "." in name and all(name.split(".")) else [name]
    return exp.Create(this=table(parts), kind="VIEW", expression=query, replace=replace)


def create_view(
    model: Model, data: str | Query, name: str, db: str | Engine | None = None, replace: bool = False
) -> str:
    """Create a view ``name`` that scores ``data`` with ``model`` in SQL (weights inlined); returns its SQL.

    An existing object of that name is an error unless ``replace`` is true (a table is never replaced).
    """
    engine, owned = _engine(db)
    try:
        query = predict_query(model, data, engine)
        parts = tuple(name.split(".")) if "." in name and all(name.split(".")) else (name,)
        if engine.table_exists(parts) and not replace:
            raise UsageError(f"{name!r} already exists; pass --replace to replace a view")
        statement = view_statement(name, query, replace)
        engine.execute(statement)
        return engine.render(statement, pretty=True)
    finally:
        if owned:
            engine.close()


def predict(
    model: Model, data: str | Query | Any, db: str | Engine | None = None
) -> tuple[list[str], list[tuple]]:
    """Score every row of ``data`` (read as in :func:`train`) in SQL; returns ``(column names, rows)``."""
    engine, owned = _engine(db)
    try:
        with open_source(engine, data, new_run_name()) as src:
            query = _scoring_query(engine, model, src)
            rows = engine.query(query)
        return [e.alias_or_name for e in query.expressions], rows
    finally:
        if owned:
            engine.close()
