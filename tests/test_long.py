"""The long plan (parameters as rows, matrix products as JOIN + GROUP BY): a 64-32-10 classifier, which
the one-column-per-parameter plans cannot hold on SQLite, PostgreSQL or MariaDB, trains there and on
DuckDB with numpy's weights to a relative 1e-9; every head, several activations, L1 and L2 and every
optimizer follow the same graph; mini-batches, validation and class weights give numpy's weights; a
named run cut by checkpoints and resumed ends with the weights of one run; early stopping keeps the best
rows; ``auto`` picks the long plan where the wide one does not fit or is measured slower, a forced wide
plan names the limit, and a run leaves no table behind."""

from __future__ import annotations

import numpy as np
import pytest

import reference as R
from conftest import assert_weights_close, make_classification, make_regression
from engines import open_engine, opened, release, unique
from sqlgrad import Model, train
from sqlgrad.engines.duckdb import DuckDBEngine
from sqlgrad.engines.mysql import MySQLEngine
from sqlgrad.engines.postgres import PostgresEngine
from sqlgrad.engines.sqlite import SQLiteEngine
from sqlgrad.errors import EngineError, TrainingError, UsageError
from sqlgrad.optim import make_optimizer
from sqlgrad.plans import PLANS, PlanInput, TrainingProgram, choose, width_problem
from sqlgrad.plans.long import LongPlan, param_rows, weights_from_rows
from sqlgrad.spec import build_spec, init_weights
from sqlgrad.sqlexpr import render
from test_training_control import expected_batches, numpy_run, server_loader, setup_case

ENGINES = ["duckdb", "sqlite", "postgres", "mysql"]
WIDE = build_spec(64, [32], "relu", "softmax", 10, 1e-3, 1e-3)


@pytest.fixture(params=ENGINES)
def eng(request):
    yield from opened(request.param)


def load(engine, X: np.ndarray, y: np.ndarray, features: list[str], y_kind: str = "integer") -> str:
    name = unique()
    rows = [
        (*map(float, r), (int(t) if y_kind == "integer" else float(t))) for r, t in zip(X, y, strict=True)
    ]
    engine.create_table(name, [*((f, "float") for f in features), ("y", y_kind)], rows)
    engine.created.append(name)
    return name


def run_tables(engine) -> list[str]:
    """Every table this connection sees (temporary ones included)."""
    dialect = engine.capabilities.dialect
    if dialect == "duckdb":
        sql = "SELECT table_name FROM duckdb_tables()"
    elif dialect == "sqlite":
        sql = "SELECT name FROM sqlite_temp_master UNION ALL SELECT name FROM sqlite_master"
    elif dialect == "postgres":
        sql = "SELECT relname FROM pg_class WHERE relkind = 'r'"
    else:
        sql = "SELECT table_name FROM information_schema.tables"
    return [str(r[0]) for r in engine.query(sql)]


# --- the 64-32-10 classifier, straight through the plan -----------------------------------------------


def test_wide_classifier_equals_numpy(eng):
    """Adam, L2 and L1, 48 rows, 3 iterations on the prepared-data layout (``x_0..x_63, y``)."""
    X, y = make_classification(11, 48, 64, 10)
    data = load(eng, X, y, [f"x_{i}" for i in range(64)])
    opt = make_optimizer("adam", 0.01)
    program = TrainingProgram(WIDE, opt, eng.capabilities)
    assert (
        width_problem("stepwise", program, eng.capabilities) is not None
        or eng.capabilities.dialect == "duckdb"
    )
    init = init_weights(WIDE, 2)
    run = unique("sgrun")
    result = LongPlan().run(eng, PlanInput(program, data, init, 3, run))
    want, losses = R.train(
        init, ["relu"], "softmax", X, y.astype(float), 0.01, 3, l2=1e-3, l1=1e-3, optimizer="adam"
    )
    assert_weights_close(result.weights, want)
    assert [k for k, _ in result.history] == [0, 1, 2]
    np.testing.assert_allclose([v for _, v in result.history], losses, rtol=1e-9)
    assert not [t for t in run_tables(eng) if t.startswith(run)]


# --- every head, activations, penalties and optimizers, through train() ---------------------------------

CASES = [
    ("softmax", ["tanh", "leaky_relu"], "momentum", {"momentum": 0.5}, "step"),
    ("sigmoid", ["sigmoid"], "nesterov", {"momentum": 0.9}, "inverse-time"),
    ("identity", ["relu", "identity"], "adam", {"beta1": 0.8}, "exponential"),
]
SCHEDULES = {
    "step": {"gamma": 0.5, "step_size": 2},
    "inverse-time": {"decay": 0.25},
    "exponential": {"gamma": 0.8},
}


@pytest.mark.parametrize(("head", "acts", "optimizer", "hyper", "schedule"), CASES, ids=[c[0] for c in CASES])
def test_heads_activations_optimizers(eng, head, acts, optimizer, hyper, schedule):
    if head == "identity":
        X, y = make_regression(5, 40, 3)
    else:
        X, y = make_classification(5, 40, 3, 3 if head == "softmax" else 2)
    features = ["a", "b", "c"]
    data = load(eng, X, y, features, "float" if head == "identity" else "integer")
    n_out = 3 if head == "softmax" else 1
    hidden = [4, 3][: len(acts)]
    spec = build_spec(3, hidden, acts, head, n_out, 1e-3, 2e-3)
    task = "regression" if head == "identity" else "classification"
    init = Model(
        features=features,
        target="y",
        task=task,
        head=head,
        activations=list(spec.activations),
        weights=init_weights(spec, 7),
        classes=None if task == "regression" else list(range(max(n_out, 2))),
    )
    lr = 0.05 if optimizer == "adam" else 0.2
    sched = SCHEDULES[schedule]
    model = train(data, "y", init=init, lr=lr, l2=1e-3, l1=2e-3, iterations=4, strategy="long", db=eng,
                  optimizer=optimizer, schedule=schedule, **sched, **hyper)  # fmt: skip
    want, losses = R.train(init.weights, acts, head, X, y.astype(float), lr, 4, l2=1e-3, l1=2e-3,
                           optimizer=optimizer, schedule=schedule, **sched, **hyper)  # fmt: skip
    assert model.training["strategy"] == "long"
    assert_weights_close(model.weights, want)
    np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)
    # the loss after the last update (computed by train() with the weights inlined) closes the history
    final, _ = R.loss_and_grads(want, acts, head, X, y.astype(float), 1e-3, 2e-3)
    np.testing.assert_allclose(model.history[-1]["loss"], final, rtol=1e-9)


# --- strategy choice and the column limits ----------------------------------------------------------


@pytest.mark.parametrize(
    ("caps", "expected"),
    [
        (DuckDBEngine.capabilities, "long"),
        (SQLiteEngine.capabilities, "long"),
        (PostgresEngine.capabilities, "long"),
        (MySQLEngine.capabilities, "long"),
    ],
    ids=["duckdb", "sqlite", "postgres", "mysql"],
)
def test_auto_picks_long_where_the_wide_plan_does_not_fit_or_is_slower(caps, expected):
    """The 64-32-10 network: too wide for SQLite, PostgreSQL and MariaDB, measured 20x slower in the wide
    form on DuckDB (``Capabilities.long_from_params``); small networks, the article's 2-2-2 among them,
    stay wide."""
    wide = TrainingProgram(WIDE, make_optimizer("gd", 0.1), caps)
    assert choose("auto", caps, 10, wide).name == expected
    small = TrainingProgram(build_spec(3, [4], "relu", "softmax", 3), make_optimizer("adam", 0.1), caps)
    assert choose("auto", caps, 10, small).name != "long"
    assert choose("long", caps, 10, small).name == "long"
    article = TrainingProgram(build_spec(2, [2], "relu", "softmax", 2, 1e-3), make_optimizer("gd", 2.0), caps)
    assert choose("auto", caps, 10, article).name != "long"


@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_auto_switches_to_long_at_the_measured_crossover(optimizer):
    """DuckDB: from ``long_from_params`` parameters with gradient descent, from
    ``long_from_params_with_state`` with an optimizer that keeps state (Adam)."""
    caps = DuckDBEngine.capabilities
    limit = caps.long_from_params if optimizer == "gd" else caps.long_from_params_with_state
    assert limit is not None
    opt = make_optimizer(optimizer, 0.1)
    below = build_spec(4, [limit // 8], "relu", "softmax", 2)  # 4h + h + 2h + 2 = 7h + 2 parameters
    assert below.n_parameters < limit
    assert choose("auto", caps, 10, TrainingProgram(below, opt, caps)).name == "recursive"
    at = build_spec(8, [limit // 8], "relu", "softmax", 2)  # 11h + 2
    assert at.n_parameters >= limit
    assert choose("auto", caps, 10, TrainingProgram(at, opt, caps)).name == "long"
    # a forced wide strategy is not second-guessed where it fits
    assert choose("recursive", caps, 10, TrainingProgram(at, opt, caps)).name == "recursive"


def test_sqlite_keeps_stepwise_for_gradient_descent_and_takes_long_for_adam():
    caps = SQLiteEngine.capabilities
    net = build_spec(16, [24], "relu", "softmax", 8)  # 608 parameters
    assert choose("auto", caps, 10, TrainingProgram(net, make_optimizer("gd", 0.1), caps)).name == "stepwise"
    assert choose("auto", caps, 10, TrainingProgram(net, make_optimizer("adam", 0.1), caps)).name == "long"


def test_the_limit_is_counted_like_the_engines_count_it():
    """Measured on SQLite 3.40: a momentum net with 998 parameters (a 1,998-column row) trains stepwise,
    one with 1,004 (2,010 columns) is refused with ``too many columns``; on PostgreSQL 15 the recursive
    plan held 1,658 parameters (1,662 select entries) and refused 1,664."""
    caps = SQLiteEngine.capabilities
    fits = TrainingProgram(build_spec(3, [166], "relu", "softmax", 2), make_optimizer("momentum", 0.1), caps)
    over = TrainingProgram(build_spec(3, [167], "relu", "softmax", 2), make_optimizer("momentum", 0.1), caps)
    assert width_problem("stepwise", fits, caps) is None
    assert "2010 columns" in width_problem("stepwise", over, caps)
    pg = PostgresEngine.capabilities
    gd = make_optimizer("gd", 0.1)
    assert (
        width_problem("recursive", TrainingProgram(build_spec(3, [276], "relu", "softmax", 2), gd, pg), pg)
        is None
    )
    assert width_problem("recursive", TrainingProgram(build_spec(3, [277], "relu", "softmax", 2), gd, pg), pg)


@pytest.mark.parametrize("strategy", ["stepwise", "recursive", "nested"])
def test_a_forced_wide_strategy_names_the_limit(strategy):
    # SQLite cannot run the recursive plan at all (its own message); PostgreSQL can, up to 1,664 columns
    caps = PostgresEngine.capabilities if strategy == "recursive" else SQLiteEngine.capabilities
    with pytest.raises(UsageError, match=r"(2000|1664).*--strategy long"):
        choose(strategy, caps, 3, TrainingProgram(WIDE, make_optimizer("gd", 0.1), caps))
    if strategy == "recursive":
        sqlite = SQLiteEngine.capabilities
        with pytest.raises(UsageError, match="sqlite cannot run the recursive plan"):
            choose(strategy, sqlite, 3, TrainingProgram(WIDE, make_optimizer("gd", 0.1), sqlite))


def test_a_forced_wide_strategy_fails_before_training_on_sqlite():
    eng = open_engine("sqlite")
    eng.created = []  # type: ignore[attr-defined]
    try:
        X, y = make_classification(3, 20, 64, 10)
        data = load(eng, X, y, [f"f{i}" for i in range(64)])
        limit = r"stepwise plan keeps one column per parameter \(2410 parameters.*2000.*--strategy long"
        with pytest.raises(UsageError, match=limit):
            train(data, "y", hidden=[32], iterations=2, strategy="stepwise", db=eng)
        assert not [t for t in run_tables(eng) if t.startswith("sqlgrad_")]
    finally:
        release(eng)


# --- tables, failures, rendering --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["duckdb", "sqlite", "postgres"])
def test_tables_dropped_when_training_fails(name):
    """A divergent run (a huge learning rate) stops with TrainingError or the engine's overflow error,
    and the run's tables are gone either way."""
    eng = open_engine(name)
    eng.created = []  # type: ignore[attr-defined]
    try:
        X, y = make_regression(1, 30, 3)
        data = load(eng, 1e3 * X, 1e3 * y, ["x_0", "x_1", "x_2"], "float")
        spec = build_spec(3, [4], "relu", "identity", 1)
        program = TrainingProgram(spec, make_optimizer("gd", 1e6), eng.capabilities)
        run = unique("sgfail")
        with pytest.raises((TrainingError, EngineError), match=r"diverged|out of range"):
            LongPlan().run(eng, PlanInput(program, data, init_weights(spec, 0), 50, run))
        assert not [t for t in run_tables(eng) if t.startswith(run)]
    finally:
        for t in eng.created:  # type: ignore[attr-defined]
            eng.drop_table(t)
        release(eng)


@pytest.mark.parametrize("dialect", ["duckdb", "sqlite", "postgres", "mysql", "spark"])
def test_statements_render_and_read_the_parameter_rows(dialect):
    from sqlgrad.engines.base import Capabilities

    caps = Capabilities(dialect, mutable_tables=dialect != "spark", native_tanh=dialect not in ("mysql",))
    spec = build_spec(2, [2], "tanh", "softmax", 2, 1e-3)
    program = TrainingProgram(spec, make_optimizer("nesterov", 0.1), caps)
    statements = PLANS["long"].statements(PlanInput(program, "prepared", init_weights(spec, 0), 3, "run"))
    sql = [render(s, dialect) for s in statements]
    step = sql[-3] if caps.mutable_tables else sql[-1]
    assert "GROUP BY" in step and "LEFT JOIN" in step
    assert ("TANH(" in step) == caps.native_tanh
    assert all("DECIMAL" not in s for s in sql)
    if caps.mutable_tables:  # a fresh table of the next rows replaces the state table
        assert step.startswith("CREATE TEMPORARY TABLE") and "run_state_next" in step
        assert sql[-2].startswith("DROP TABLE") and sql[-1].startswith("ALTER TABLE")
    else:
        assert "INSERT INTO" in step
    # no iteration number in the update: the same text serves every update
    assert "MAX(" in step and "= 0" not in step.replace(">= 0", "")
    rows = param_rows(program, init_weights(spec, 0))
    assert len(rows) == spec.n_parameters and rows[4] == (1, -1, 0, 0.0)
    back = weights_from_rows(program, [r for r in reversed(rows)])
    assert_weights_close(back, init_weights(spec, 0), rtol=0)


# --- the command line, once ------------------------------------------------------------------------


def test_cli_trains_a_64_feature_10_class_table_on_sqlite(tmp_path, capsys):
    import json

    from sqlgrad.cli import main
    from sqlgrad.engines.sqlite import SQLiteEngine

    path = tmp_path / "wide.db"
    X, y = make_classification(4, 60, 64, 10)
    with SQLiteEngine(f"sqlite:///{path}") as eng:
        cols = [(f"f{i}", "float") for i in range(64)] + [("y", "integer")]
        eng.create_table("wide", cols, [(*map(float, r), int(t)) for r, t in zip(X, y, strict=True)])
    out = tmp_path / "m.json"
    argv = ["train", "wide", "--db", f"sqlite:///{path}", "--target", "y", "--hidden", "32",
            "--optimizer", "adam", "--lr", "0.01", "--iterations", "3", "-o", str(out),
            "--quiet"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    model = json.loads(out.read_text())
    assert model["training"]["strategy"] == "long"
    assert [np.shape(layer["W"]) for layer in model["layers"]] == [(64, 32), (32, 10)]
    losses = [h["loss"] for h in model["history"]]
    assert len(losses) == 4 and losses[-1] < losses[0]
    with SQLiteEngine(f"sqlite:///{path}") as eng:
        assert [t for t in run_tables(eng) if t.startswith("sqlgrad_")] == []


# --- training control: mini-batches, validation, class weights, named runs, early stopping ------------


@pytest.mark.parametrize("name", ["duckdb", "sqlite"])
def test_minibatches_validation_and_class_weights_equal_numpy(name):
    """Adam with L2 on batches of 16 drawn by the documented rule, a 25% validation split and balanced
    class weights: the weights, the loss before every update (on its batch, weighted) and the validation
    loss after every epoch are numpy's."""
    for eng in opened(name):
        t = unique()
        X, y, init = setup_case(eng, load=server_loader(eng), name=t)
        model = train(t, "y", init=init, lr=0.05, l2=1e-3, optimizer="adam", batch_size=16, epochs=3,
                      validation=0.25, seed=11, class_weight="balanced", strategy="long", db=eng)  # fmt: skip
        assert model.training["strategy"] == "long"
        updates = model.training["iterations"]
        rows, valid, batches = expected_batches(X, y, 11, 0.25, 16, updates)
        assert updates == 3 * int(np.ceil(len(rows) / 16))
        counts = np.bincount(y.astype(int), minlength=3)
        sw = len(y) / (3 * counts[y.astype(int)])  # balanced, from all the rows
        want, losses = numpy_run(init, X, y, rows, batches, 0.05, updates, sample_weight=sw, optimizer="adam")
        assert_weights_close(model.weights, want)
        np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)
        checks = [h for h in model.history if "val_loss" in h]
        assert [h["iteration"] + 1 for h in checks] == [updates // 3 * (e + 1) for e in range(3)]
        zs, _ = R.forward(want, init.activations, X[valid])
        z = zs[-1]
        lse = z.max(axis=1) + np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1))
        yv = y[valid].astype(int)
        val_loss = np.mean(lse - z[np.arange(len(valid)), yv])  # validation: the plain mean log loss
        assert checks[-1]["val_loss"] == pytest.approx(val_loss, rel=1e-9)
        assert not [r for r in run_tables(eng) if r.startswith("sqlgrad_")]


def _same(a, b):
    for (wa, ba), (wb, bb) in zip(a.weights, b.weights, strict=True):
        assert np.array_equal(wa, wb) and np.array_equal(ba, bb)


def test_checkpoints_and_resume_give_the_weights_of_one_run(engine):
    """A named mini-batch run stopped after 2 of 6 epochs and resumed from its checkpoint ends with
    exactly (bit for bit) the weights and history of one uninterrupted run; a checkpoint holds the
    parameter rows of one iteration."""
    _, _, init = setup_case(engine)
    kw = dict(init=init, lr=0.05, l2=1e-3, optimizer="adam", batch_size=20, validation=0.2, seed=1,
              strategy="long", db=engine)  # fmt: skip
    plain = train("t", "y", epochs=6, **kw)
    first = train("t", "y", epochs=2, name="lr1", checkpoint_every=3, **kw)
    assert first.training["iterations"] == plain.training["iterations"] // 3
    rows = engine.query('SELECT DISTINCT "iteration" FROM "lr1_checkpoint"')
    assert rows == [(first.training["iterations"],)]
    n_params = sum(w.size + b.size for w, b in init.weights)
    assert engine.scalar('SELECT COUNT(*) FROM "lr1_checkpoint"') == n_params
    resumed = train("t", "y", epochs=6, name="lr1", checkpoint_every=3, resume=True, **kw)
    assert resumed.training["strategy"] == "long"
    assert resumed.training["resumed_from"] == first.training["iterations"]
    _same(plain, resumed)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in plain.history]
    hist = engine.query('SELECT "iteration", "loss" FROM "lr1_history" ORDER BY 1')
    assert [r[0] for r in hist] == list(range(plain.training["iterations"]))
    assert [r[1] for r in hist] == [h["loss"] for h in plain.history[:-1]]
    # the long plan's own tables are gone; the run's four stay
    left = {r for r in run_tables(engine) if r.startswith(("sqlgrad_", "lr1"))}
    assert left == {"lr1_meta", "lr1_checkpoint", "lr1_history"}


def test_early_stopping_keeps_the_best_rows(engine):
    _, _, init = setup_case(engine, n=60)
    kw = dict(
        init=init, optimizer="gd", lr=3.0, batch_size=8, validation=0.3, seed=2, strategy="long", db=engine
    )
    model = train("t", "y", epochs=40, early_stopping=2, **kw)
    best, done = model.training["best_iteration"], model.training["iterations"]
    assert "early stopping" in model.training["stopped"] and best < done < 40 * 6
    again = train("t", "y", iterations=best, **kw)  # the kept weights are those after `best` updates
    _same(model, again)
    vals = [h["val_loss"] for h in model.history if "val_loss" in h]
    assert min(vals) == vals[best // 6 - 1]


def test_wide_adam_minibatch_run_is_auto_and_quick(engine):
    """The 64-32-10 Adam mini-batch run whose wide form was OOM-killed at 20 GB: ``auto`` takes the long
    plan on DuckDB, and it gives numpy's weights in seconds."""
    import time

    X, y = make_classification(21, 300, 64, 10)
    features = [f"x{i}" for i in range(64)]
    from conftest import load_arrays

    load_arrays(engine, "w", {**{f: X[:, i] for i, f in enumerate(features)}, "y": y})
    spec = build_spec(64, [32], "relu", "softmax", 10)
    init = Model(features, "y", "classification", "softmax", list(spec.activations), init_weights(spec, 3),
                 list(range(10)))  # fmt: skip
    t0 = time.perf_counter()
    model = train("w", "y", init=init, lr=0.01, optimizer="adam", batch_size=64, epochs=2, seed=5, db=engine)
    elapsed = time.perf_counter() - t0
    assert model.training["strategy"] == "long"
    updates = model.training["iterations"]
    assert updates == 10
    rows, _, batches = expected_batches(X, y.astype(float), 5, 0.0, 64, updates)
    want, losses = R.train(init.weights, ["relu"], "softmax", X[rows], y[rows].astype(float), 0.01, updates,
                           optimizer="adam", batches=batches)  # fmt: skip
    assert_weights_close(model.weights, want)
    np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)
    assert elapsed < 60, f"{elapsed:.1f} s"
