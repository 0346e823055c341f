"""Optimizers, learning-rate schedules and the L1 penalty: the weights trained in SQL equal the numpy
reference's (tests/reference.py ``train``) to a relative 1e-9, for every optimizer and schedule, with L1
and L2, on the recursive and stepwise strategies; divergence stops training with no model written."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import sqlglot

import reference as R
from conftest import assert_weights_close, load_arrays, make_classification, make_regression
from sqlgrad import Model, train
from sqlgrad.cli import main
from sqlgrad.errors import SpecError, TrainingError, UsageError
from sqlgrad.optim import (
    OPTIMIZERS,
    SCHEDULES,
    Adam,
    GradientDescent,
    Momentum,
    Nesterov,
    StepDecay,
    make_optimizer,
    make_schedule,
    optimizer_from_training,
)
from sqlgrad.plans import TrainingProgram
from sqlgrad.spec import build_spec, init_weights

LR = {"gd": 0.3, "momentum": 0.1, "nesterov": 0.1, "adam": 0.05}
SCHEDULE_ARGS = {
    "constant": {},
    "step": {"gamma": 0.5, "step_size": 3},
    "exponential": {"gamma": 0.8},
    "inverse-time": {"decay": 0.25},
}


def _init_model(spec, seed, features, classes, task) -> Model:
    return Model(
        features=features,
        target="y",
        task=task,
        head=spec.head,
        activations=list(spec.activations),
        weights=init_weights(spec, seed),
        classes=classes,
    )


def run_case(
    engine,
    *,
    optimizer,
    schedule="constant",
    strategy="recursive",
    head="softmax",
    hidden=(4,),
    activation="tanh",
    l2=1e-3,
    l1=1e-3,
    iterations=6,
    n=120,
    d=3,
    seed=3,
    **hyper,
):
    """Train in SQL and in numpy from the same start; returns (model, numpy weights, numpy losses)."""
    classes = 3 if head == "softmax" else 2
    if head == "identity":
        X, y = make_regression(seed, n, d)
    else:
        X, y = make_classification(seed, n, d, classes)
    features = [f"f{i}" for i in range(d)]
    load_arrays(engine, "t", {**{f: X[:, i] for i, f in enumerate(features)}, "y": y})
    acts = [activation] * len(hidden)
    spec = build_spec(d, hidden, acts, head, classes if head == "softmax" else 1, l2, l1)
    task = "regression" if head == "identity" else "classification"
    init = _init_model(spec, seed + 1, features, list(range(classes)) if task != "regression" else None, task)
    lr = LR[optimizer]
    sched = SCHEDULE_ARGS[schedule]
    model = train(
        "t",
        "y",
        init=init,
        lr=lr,
        l2=l2,
        l1=l1,
        iterations=iterations,
        strategy=strategy,
        db=engine,
        optimizer=optimizer,
        schedule=schedule,
        **sched,
        **hyper,
    )
    want, losses = R.train(
        init.weights,
        acts,
        head,
        X,
        y.astype(float),
        lr,
        iterations,
        l2=l2,
        l1=l1,
        optimizer=optimizer,
        schedule=schedule,
        **sched,
        **hyper,
    )
    return model, want, losses


def _assert_same(model, want, losses):
    assert_weights_close(model.weights, want)
    np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)


# --- every optimizer x every schedule x recursive/stepwise, with L1 and L2 -----------------------------


CASES = [("recursive", s) for s in SCHEDULES] + [("stepwise", "step"), ("stepwise", "inverse-time")]


@pytest.mark.parametrize(("strategy", "schedule"), CASES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_optimizer_and_schedule_equal_numpy(engine, optimizer, schedule, strategy):
    model, want, losses = run_case(engine, optimizer=optimizer, schedule=schedule, strategy=strategy)
    _assert_same(model, want, losses)
    assert model.training["optimizer"] == optimizer and model.training["schedule"] == schedule
    assert model.training["l1"] == 1e-3 and model.l1 == 1e-3


@pytest.mark.parametrize(
    ("optimizer", "hyper"),
    [
        ("momentum", {"momentum": 0.5}),
        ("nesterov", {"momentum": 0.95}),
        ("adam", {"beta1": 0.8, "beta2": 0.99, "eps": 1e-6}),
    ],
)
@pytest.mark.parametrize("head", ["sigmoid", "identity"])
def test_hyperparameters_and_heads(engine, optimizer, hyper, head):
    model, want, losses = run_case(
        engine, optimizer=optimizer, schedule="step", head=head, hidden=(5, 3), iterations=10, **hyper
    )
    _assert_same(model, want, losses)
    for k, v in hyper.items():
        assert model.training[k] == v


@pytest.mark.parametrize("strategy", ["recursive", "stepwise", "nested"])
def test_l1_alone_with_gradient_descent(engine, strategy):
    model, want, losses = run_case(
        engine, optimizer="gd", l2=0.0, l1=0.01, strategy=strategy, activation="relu", iterations=6
    )
    _assert_same(model, want, losses)


@pytest.mark.parametrize("schedule", ["step", "inverse-time"])
def test_nested_plan_takes_schedules(engine, schedule):
    model, want, losses = run_case(engine, optimizer="gd", schedule=schedule, strategy="nested", iterations=6)
    _assert_same(model, want, losses)


def test_many_iterations_adam(engine):
    model, want, losses = run_case(
        engine, optimizer="adam", schedule="exponential", hidden=(6, 4), activation="relu", iterations=30
    )
    _assert_same(model, want, losses)


# --- conventions, checked without the reference -------------------------------------------------------


def test_first_adam_step_is_lr_times_sign_of_gradient(engine):
    """With bias correction, Adam's first step is lr * g / (|g| + eps): about lr * sign(g)."""
    X, y = make_regression(0, 50, 2)
    load_arrays(engine, "t", {"a": X[:, 0], "b": X[:, 1], "y": y})
    spec = build_spec(2, [], [], "identity", 1)
    init = _init_model(spec, 0, ["a", "b"], None, "regression")
    _, grads = R.loss_and_grads(init.weights, [], "identity", X, y, 0.0)
    model = train("t", "y", init=init, optimizer="adam", lr=0.01, iterations=1, db=engine)
    (w0, b0), (w1, b1) = init.weights[0], model.weights[0]
    np.testing.assert_allclose(w1 - w0, -0.01 * np.sign(grads[0][0]), rtol=1e-6)
    np.testing.assert_allclose(b1 - b0, -0.01 * np.sign(grads[0][1]), rtol=1e-6)


def test_momentum_second_step(engine):
    """Heavy ball, PyTorch convention: p2 = p1 - lr * (mu * g0 + g1); Nesterov: p1 = p0 - lr * (1 + mu) g0."""
    X, y = make_regression(1, 40, 2)
    load_arrays(engine, "t", {"a": X[:, 0], "b": X[:, 1], "y": y})
    spec = build_spec(2, [], [], "identity", 1)
    init = _init_model(spec, 0, ["a", "b"], None, "regression")
    lr, mu = 0.1, 0.7
    _, g0 = R.loss_and_grads(init.weights, [], "identity", X, y, 0.0)
    p1 = [(init.weights[0][0] - lr * g0[0][0], init.weights[0][1] - lr * g0[0][1])]
    _, g1 = R.loss_and_grads(p1, [], "identity", X, y, 0.0)
    model = train("t", "y", init=init, optimizer="momentum", momentum=mu, lr=lr, iterations=2, db=engine)
    want = p1[0][0] - lr * (mu * g0[0][0] + g1[0][0])
    np.testing.assert_allclose(model.weights[0][0], want, rtol=1e-9)
    model = train("t", "y", init=init, optimizer="nesterov", momentum=mu, lr=lr, iterations=1, db=engine)
    np.testing.assert_allclose(model.weights[0][0], init.weights[0][0] - lr * (1 + mu) * g0[0][0], rtol=1e-9)


def test_schedule_rates():
    assert [make_schedule("step", gamma=0.5, step_size=2).rate(1.0, t) for t in range(5)] == [
        1.0,
        1.0,
        0.5,
        0.5,
        0.25,
    ]
    assert make_schedule("exponential", gamma=0.5).rate(2.0, 3) == 0.25
    assert make_schedule("inverse-time", decay=1.0).rate(1.0, 3) == 0.25
    assert make_schedule("step", step_size=1).rate(1.0, 1) == 0.1  # gamma defaults to 0.1 (StepLR)


# --- the row layout and the SQL --------------------------------------------------------------------------


def test_row_layout_params_then_state(engine):
    spec = build_spec(2, [2], "relu", "softmax", 2)
    prog = TrainingProgram(spec, Adam(0.1), engine.capabilities)
    names = [e.alias for e in prog.init_select(init_weights(spec)).expressions]
    params = prog.param_columns
    assert names == ["iteration", "loss", *params, *(f"m_{c}" for c in params), *(f"v_{c}" for c in params)]
    assert prog.state_columns == names[2 + len(params) :]
    assert TrainingProgram(spec, GradientDescent(0.1), engine.capabilities).state_columns == []
    row = list(range(len(names)))
    assert prog.param_values(row) == list(range(2, 2 + len(params)))


def test_every_literal_is_double_and_identifiers_quoted(engine):
    spec = build_spec(2, [2], "relu", "softmax", 2, l2=1e-3, l1=1e-3)
    opt = Adam(0.01, StepDecay(3, 0.5), beta1=0.85)
    prog = TrainingProgram(spec, opt, engine.capabilities)
    sql = prog.step_select(sqlglot.exp.to_table("d"), sqlglot.exp.to_table("p")).sql("duckdb")
    assert "CAST(0.85 AS DOUBLE)" in sql and "CAST(0.15000000000000002 AS DOUBLE)" in sql
    assert "POWER(" in sql and "FLOOR(" in sql and "SIGN(" in sql and "SQRT(" in sql
    assert '"m_w1_0_0"' in sql and '"v_b2_1"' in sql


def test_sql_command_uses_the_recorded_optimizer(engine, tmp_path, capsys):
    model, _, _ = run_case(engine, optimizer="adam", schedule="step", iterations=2)
    path = str(tmp_path / "m.json")
    model.save(path)
    for strategy in ("recursive", "stepwise"):
        assert main(["sql", path, "--train", "--strategy", strategy, "--iterations", "3"]) == 0
        out = capsys.readouterr().out
        assert '"m_w1_0_0"' in out and "POWER(" in out and "CAST(0.999 AS DOUBLE)" in out
    sqlglot.parse_one(out.split(";\n")[0], read="duckdb")  # CREATE TEMPORARY TABLE ... (zeros of state)
    assert main(["sql", path, "--train", "--strategy", "nested", "--iterations", "3"]) == 2
    assert "gradient descent only" in capsys.readouterr().err


def test_model_file_keeps_l1(tmp_path):
    spec = build_spec(2, [2], "relu", "softmax", 2, l2=1e-3, l1=2e-3)
    m = _init_model(spec, 0, ["a", "b"], [0, 1], "classification")
    m.l1, m.l2 = 2e-3, 1e-3
    path = str(tmp_path / "m.json")
    m.save(path)
    assert Model.load(path).spec.l1 == 2e-3
    with open(path) as fh:
        data = json.load(fh)
    del data["l1"]
    assert Model.from_dict(data).l1 == 0.0


def test_optimizer_from_training():
    opt = optimizer_from_training(
        {"optimizer": "adam", "lr": 0.2, "beta1": 0.5, "schedule": "exponential", "gamma": 0.9}
    )
    assert opt == Adam(0.2, make_schedule("exponential", gamma=0.9), beta1=0.5)
    assert optimizer_from_training({}) == GradientDescent(0.1)
    assert optimizer_from_training({"optimizer": "gd", "lr": 2.0}, lr=0.5) == GradientDescent(0.5)
    assert optimizer_from_training(opt.options()) == opt


# --- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: make_optimizer("sgd"), "unknown optimizer"),
        (lambda: make_optimizer("adam", momentum=0.5), "momentum does not apply"),
        (lambda: make_optimizer("gd", schedule="step"), "needs step_size"),
        (lambda: make_optimizer("gd", schedule="exponential"), "needs gamma"),
        (lambda: make_optimizer("gd", schedule="inverse-time"), "needs decay"),
        (lambda: make_optimizer("gd", gamma=0.5), "gamma does not apply"),
        (lambda: make_optimizer("gd", schedule="cosine"), "unknown schedule"),
        (lambda: make_optimizer("gd", 0.0), "finite number > 0"),
        (lambda: make_optimizer("adam", float("inf")), "finite number > 0"),
        (lambda: make_optimizer("adam", beta2=1.0), "beta2 must be in [0, 1)"),
        (lambda: make_optimizer("adam", eps=-1.0), "eps must be >= 0"),
        (lambda: make_optimizer("momentum", momentum=-0.1), "momentum must be >= 0"),
        (lambda: Nesterov(0.1, momentum=0.0), "momentum > 0"),
        (lambda: make_optimizer("gd", schedule="step", step_size=0), "step_size"),
        (lambda: make_optimizer("gd", schedule="exponential", gamma=-1.0), "gamma must be > 0"),
        (lambda: build_spec(2, [], [], "sigmoid", 1, l1=float("nan")), "l1 must be"),
    ],
)
def test_bad_options_are_usage_errors(call, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace(")", r"\)")):
        call()


def test_optimizer_object_and_its_conflicts(engine):
    X, y = make_regression(2, 30, 1)
    load_arrays(engine, "t", {"x": X[:, 0], "y": y})
    m = train("t", "y", task="regression", optimizer=Momentum(0.05, momentum=0.5), iterations=3, db=engine)
    assert m.training["optimizer"] == "momentum" and m.training["lr"] == 0.05
    with pytest.raises(UsageError, match="do not also pass lr"):
        train("t", "y", task="regression", optimizer=Momentum(0.05), lr=0.1, iterations=3, db=engine)
    with pytest.raises(UsageError, match="schedule"):
        train("t", "y", task="regression", optimizer=Adam(), schedule="step", iterations=3, db=engine)
    with pytest.raises(SpecError):
        Adam(lr=-1.0)


def test_nested_plan_refuses_other_optimizers(engine):
    with pytest.raises(UsageError, match="gradient descent only"):
        run_case(engine, optimizer="adam", strategy="nested", iterations=2)


# --- divergence -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["recursive", "stepwise"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_divergence_raises_training_error(engine, optimizer, strategy):
    X, y = make_classification(0, 60, 2, 2)
    load_arrays(engine, "t", {"a": X[:, 0], "b": X[:, 1], "y": y})
    with pytest.raises(TrainingError, match=r"diverged at iteration \d+"):
        train("t", "y", hidden=[4], lr=1e200, iterations=5, optimizer=optimizer, strategy=strategy, db=engine)


def test_divergence_after_the_last_update(engine):
    """One update to infinite weights: the loss before it is finite, the loss after it is not."""
    X, y = make_classification(0, 60, 2, 2)
    load_arrays(engine, "t", {"a": X[:, 0], "b": X[:, 1], "y": y})
    with pytest.raises(TrainingError, match="diverged at iteration 1"):
        train("t", "y", hidden=[4], lr=1e200, iterations=1, optimizer="adam", db=engine)


@pytest.fixture
def points_csv(tmp_path):
    X, y = make_classification(5, 80, 2, 2)
    path = tmp_path / "points.csv"
    with open(path, "w") as fh:
        fh.write("a,b,label\n")
        for row, lab in zip(X.tolist(), y.tolist(), strict=True):
            fh.write(f"{row[0]!r},{row[1]!r},{lab}\n")
    return str(path)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_cli_divergence_exit_code_4_and_no_model(points_csv, tmp_path, capsys, optimizer):
    out = str(tmp_path / "model.json")
    argv = ["train", points_csv, "--target", "label", "--hidden", "4", "--lr", "1e200", "--iterations", "5"]
    code = main([*argv, "--optimizer", optimizer, "--quiet", "-o", out])
    _, stderr = capsys.readouterr()
    assert code == 4
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sqlgrad: error: training diverged at iteration ")
    assert not os.path.exists(out)


def test_cli_records_options(points_csv, tmp_path, capsys):
    out = str(tmp_path / "model.json")
    argv = ["train", points_csv, "--target", "label", "--hidden", "3", "--iterations", "6", "--quiet"]
    argv += ["--optimizer", "nesterov", "--momentum", "0.8", "--lr", "0.2", "--schedule", "step"]
    argv += ["--step-size", "2", "--gamma", "0.5", "--l1", "1e-3", "--l2", "1e-4", "-o", out]
    assert main(argv) == 0, capsys.readouterr().err
    training = Model.load(out).training
    assert {k: training[k] for k in ("optimizer", "lr", "momentum", "schedule", "gamma", "step_size")} == {
        "optimizer": "nesterov",
        "lr": 0.2,
        "momentum": 0.8,
        "schedule": "step",
        "gamma": 0.5,
        "step_size": 2,
    }
    assert training["l1"] == 1e-3 and Model.load(out).l1 == 1e-3
    # an option that the optimizer does not use is one line and exit code 2
    assert main([*argv[:-2], "--beta1", "0.5", "-o", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sqlgrad: error: beta1 does not apply to the 'nesterov' optimizer"]
