"""Weights trained in SQL equal the numpy reference's to a relative 1e-9, for every hidden activation,
every head, deeper networks, every strategy, and random small architectures (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reference as R
from conftest import assert_weights_close, load_arrays, make_classification, make_regression
from sqlgrad import Model, evaluate, predict, predict_query, train
from sqlgrad.engines import capabilities_for
from sqlgrad.engines.duckdb import DuckDBEngine
from sqlgrad.optim import GradientDescent
from sqlgrad.plans import TrainingProgram
from sqlgrad.spec import ACTIVATIONS, build_spec, init_weights


def _init_model(spec, seed, features, target="y", classes=None, task="classification") -> Model:
    return Model(
        features=features,
        target=target,
        task=task,
        head=spec.head,
        activations=list(spec.activations),
        weights=init_weights(spec, seed),
        classes=classes,
    )


def run_case(
    engine,
    *,
    hidden,
    activation,
    head,
    strategy,
    iterations=8,
    lr=0.3,
    l2=1e-3,
    n=200,
    d=3,
    seed=0,
    classes=3,
    optimizer="gd",
):
    classes = classes if head == "softmax" else 2
    if head == "identity":
        X, y = make_regression(seed, n, d)
    else:
        X, y = make_classification(seed, n, d, classes)
    features = [f"f{i}" for i in range(d)]
    load_arrays(engine, "t", {**{f: X[:, i] for i, f in enumerate(features)}, "y": y})
    n_out = classes if head == "softmax" else 1
    acts = [activation] * len(hidden) if isinstance(activation, str) else list(activation)
    spec = build_spec(d, hidden, acts, head, n_out, l2)
    task = "regression" if head == "identity" else "classification"
    labels = list(range(classes)) if task == "classification" else None
    init = _init_model(spec, seed + 1, features, classes=labels, task=task)
    model = train(
        "t",
        "y",
        init=init,
        lr=lr,
        l2=l2,
        iterations=iterations,
        strategy=strategy,
        db=engine,
        optimizer=optimizer,
    )
    yr = y.astype(float)
    if optimizer == "gd":
        want, losses = R.train_gd(init.weights, acts, head, X, yr, lr, l2, iterations)
    else:
        want, losses = R.train(init.weights, acts, head, X, yr, lr, iterations, l2=l2, optimizer=optimizer)
    return model, want, losses


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("head", ["softmax", "sigmoid", "identity"])
def test_every_activation_and_head(engine, activation, head):
    model, want, losses = run_case(engine, hidden=[4], activation=activation, head=head, strategy="recursive")
    assert_weights_close(model.weights, want)
    got_losses = [h["loss"] for h in model.history[:-1]]
    np.testing.assert_allclose(got_losses, losses, rtol=1e-9)


@pytest.mark.parametrize("strategy", ["recursive", "stepwise", "nested"])
@pytest.mark.parametrize("head", ["softmax", "sigmoid", "identity"])
def test_every_strategy_two_hidden_layers(engine, strategy, head):
    model, want, losses = run_case(
        engine, hidden=[5, 3], activation=["tanh", "relu"], head=head, strategy=strategy, iterations=4
    )
    assert_weights_close(model.weights, want)
    np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)


def test_three_hidden_layers_many_iterations(engine):
    model, want, _ = run_case(
        engine,
        hidden=[6, 5, 4],
        activation=["leaky_relu", "sigmoid", "relu"],
        head="softmax",
        strategy="recursive",
        iterations=60,
        lr=0.2,
    )
    assert_weights_close(model.weights, want)


def test_no_hidden_layer_is_logistic_regression(engine):
    model, want, _ = run_case(engine, hidden=[], activation=[], head="sigmoid", strategy="stepwise")
    assert_weights_close(model.weights, want)


def test_final_loss_is_loss_at_final_weights(engine):
    model, want, _ = run_case(engine, hidden=[4], activation="relu", head="softmax", strategy="recursive")
    X, y = make_classification(0, 200, 3, 3)
    final, _ = R.loss_and_grads(want, ["relu"], "softmax", X, y.astype(float), 1e-3)
    assert model.history[-1]["iteration"] == 8
    assert model.history[-1]["loss"] == pytest.approx(final, rel=1e-9)


@pytest.mark.parametrize("strategy", ["recursive", "stepwise", "nested"])
@pytest.mark.parametrize(
    ("head", "activation"), [("softmax", "relu"), ("sigmoid", "tanh"), ("identity", "sigmoid")]
)
def test_wide_layers_as_list_dot_products(engine, strategy, head, activation):
    """Layers wide enough for DuckDB's list dot products (12 -> 10 -> 9 -> 5 classes: every forward
    product and the backward product through the 9-unit layer are ``list_inner_product`` calls; the
    5-wide gradient stays scalar) train to the reference's weights."""
    assert engine.capabilities.vector_dot is not None
    model, want, losses = run_case(
        engine,
        hidden=[10, 9],
        activation=activation,
        head=head,
        strategy=strategy,
        iterations=3 if strategy == "nested" else 6,
        d=12,
        classes=5,
    )
    assert_weights_close(model.weights, want)
    np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_wide_layers_with_optimizer_state(engine, optimizer):
    model, want, _ = run_case(
        engine,
        hidden=[16],
        activation="relu",
        head="softmax",
        strategy="recursive",
        d=10,
        classes=4,
        lr=0.05,
        iterations=5,
        optimizer=optimizer,
    )
    assert_weights_close(model.weights, want)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_inputs=st.integers(1, 10),
    hidden=st.lists(st.integers(1, 10), min_size=0, max_size=3),
    acts=st.lists(st.sampled_from(ACTIVATIONS), min_size=3, max_size=3),
    head=st.sampled_from(["softmax", "sigmoid", "identity"]),
    classes=st.integers(2, 5),
    rows=st.integers(4, 40),
    iterations=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    strategy=st.sampled_from(["recursive", "stepwise"]),
)
def test_random_architectures(n_inputs, hidden, acts, head, classes, rows, iterations, seed, strategy):
    if head != "softmax":
        classes = 2
    if head == "identity":
        X, y = make_regression(seed, rows, n_inputs)
    else:
        X, y = make_classification(seed, max(rows, classes), n_inputs, classes)
    acts = acts[: len(hidden)]
    features = [f"c{i}" for i in range(n_inputs)]
    spec = build_spec(n_inputs, hidden, acts, head, classes if head == "softmax" else 1, 0.01)
    task = "regression" if head == "identity" else "classification"
    init = _init_model(
        spec, seed, features, classes=list(range(classes)) if task != "regression" else None, task=task
    )
    with DuckDBEngine() as eng:
        load_arrays(eng, "data", {**{f: X[:, i] for i, f in enumerate(features)}, "target": y})
        model = train(
            "data", "target", init=init, lr=0.1, l2=0.01, iterations=iterations, strategy=strategy, db=eng
        )
    want, _ = R.train_gd(init.weights, acts, head, X, y.astype(float), 0.1, 0.01, iterations)
    assert_weights_close(model.weights, want)


def test_wide_layer_with_penalty_stays_below_expression_depth_limits(engine):
    """1,502 parameters with L2: the penalty sums 1,200 squares (a left-deep chain of that many additions
    passes DuckDB's expression-depth limit of 1,000)."""
    model, want, _ = run_case(
        engine, hidden=[300], activation="tanh", head="softmax", strategy="recursive", iterations=1, n=40, d=2
    )
    assert_weights_close(model.weights, want)


def test_list_dot_products_only_where_declared_and_wide_enough():
    """DuckDB's step of the 64-32-10 network multiplies through lists: 32 + 10 units forward and the
    32 products flowing back through the output layer; the article's network and engines that declare no
    ``vector_dot`` keep scalar products."""

    def dots(spec, dialect):
        stages = TrainingProgram(spec, GradientDescent(0.1), capabilities_for(dialect)).train_stages
        return sum(
            e.sql(dialect).upper().count("LIST_INNER_PRODUCT(") for lvl in stages.levels for _, e in lvl
        )

    wide = build_spec(64, [32], ["relu"], "softmax", 10, 0.0)
    assert dots(wide, "duckdb") == 32 + 10 + 32
    assert dots(build_spec(2, [2], ["relu"], "softmax", 2, 1e-3), "duckdb") == 0
    assert dots(wide, "postgres") == dots(wide, "spark") == 0


@pytest.mark.parametrize("head", ["softmax", "sigmoid", "identity"])
def test_wide_predictions_and_metrics_through_list_dot_products(engine, head):
    """Scoring and evaluating a network wide enough for DuckDB's list dot products give the reference's
    scores and metrics (the prediction query inlines the weights as literals inside the lists)."""

    model, _, _ = run_case(
        engine,
        hidden=[10, 9],
        activation="tanh",
        head=head,
        strategy="recursive",
        d=12,
        classes=5,
        iterations=3,
    )
    names, rows = predict(model, "t", db=engine)
    X = np.array([[r[names.index(f"f{i}")] for i in range(12)] for r in rows])
    want = R.predict_scores(model.weights, model.activations, head, X)
    if head == "identity":
        got = np.array([r[names.index("predicted_y")] for r in rows], dtype=float)
        np.testing.assert_allclose(got, np.ravel(want), rtol=1e-9)
        metrics = evaluate(model, "t", db=engine)
        y = np.array([r[names.index("y")] for r in rows], dtype=float)
        np.testing.assert_allclose(metrics["mse"], np.mean((np.ravel(want) - y) ** 2), rtol=1e-9)
    else:
        cols = [n for n in names if n.startswith("probability_")]
        got = np.array([[r[names.index(c)] for c in cols] for r in rows], dtype=float)
        if want.ndim == 1:  # the sigmoid head's reference gives the second class's probability
            want = np.column_stack([1 - want, want])
        np.testing.assert_allclose(got, want, rtol=1e-9)
        metrics = evaluate(model, "t", db=engine)
        y = np.array([r[names.index("y")] for r in rows])
        assert metrics["accuracy"] == pytest.approx(np.mean(np.argmax(want, axis=1) == y), rel=1e-12)
    assert "LIST_INNER_PRODUCT(" in engine.render(predict_query(model, "t", db=engine)).upper()


def test_a_null_feature_makes_a_null_prediction_through_list_dot_products(engine):
    """Scoring a row with a NULL feature (no fill) gives NULL, as with scalar products: DuckDB's
    ``list_inner_product`` refuses a list holding a NULL, so the prediction query packs a NULL as 0 and
    the row's NULL flag blanks its outputs; the other rows score as the reference says."""

    model, _, _ = run_case(
        engine,
        hidden=[10],
        activation="relu",
        head="softmax",
        strategy="recursive",
        d=12,
        classes=4,
        iterations=2,
    )
    engine.connection.execute("CREATE TABLE s AS SELECT * FROM t")
    engine.connection.execute('UPDATE s SET "f3" = NULL WHERE rowid IN (SELECT rowid FROM s LIMIT 2)')
    names, rows = predict(model, "s", db=engine)
    probs = [[r[names.index(f"probability_{c}")] for c in range(4)] for r in rows]
    nulls = [r[names.index("f3")] is None for r in rows]
    assert sum(nulls) == 2
    assert all(all(p is None for p in ps) == null for ps, null in zip(probs, nulls, strict=True))
    X = np.array(
        [
            [r[names.index(f"f{i}")] for i in range(12)]
            for r, null in zip(rows, nulls, strict=True)
            if not null
        ]
    )
    want = R.predict_scores(model.weights, model.activations, "softmax", X)
    got = np.array([ps for ps, null in zip(probs, nulls, strict=True) if not null], dtype=float)
    np.testing.assert_allclose(got, want, rtol=1e-9)
