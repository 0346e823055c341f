"""Wide layers' gradients gathered as list dot products over blocks of rows (DuckDB), against numpy.

Which layers are worth gathering is a speed rule (``GatheredGradients.products_per_value``, 12 on
DuckDB); the sums must be right at any shape, so most cases here lower it to 4 on their engine
(:func:`gathering_from`), which gathers a 12-to-8 layer and keeps an 8-to-3 one as one SUM per weight.

Gathering relies on DuckDB filling every ``list`` aggregate of a group from the same rows in the same
order, also when several threads each gather part of a block and their states are combined: the
large case below spans several row groups (122,880 rows each) and blocks, on two threads.
"""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

import reference as R
from conftest import assert_weights_close, load_arrays, make_classification
from sqlgrad import Model, train
from sqlgrad.engines import capabilities_for
from sqlgrad.engines.duckdb import DuckDBEngine
from sqlgrad.optim import GradientDescent
from sqlgrad.plans import PLANS, PlanInput, TrainingProgram
from sqlgrad.spec import build_spec, init_weights
from test_training_control import expected_batches, numpy_run, setup_case


def gathering_from(engine, products_per_value=4):
    """The engine, gathering every layer with at least ``products_per_value`` products per value."""
    how = replace(engine.capabilities.gathered_gradients, products_per_value=products_per_value)
    engine.capabilities = replace(engine.capabilities, gathered_gradients=how)
    return engine


def _case(engine, n, d, hidden, classes, seed=3):
    X, y = make_classification(seed, n, d, classes)
    features = [f"f{i}" for i in range(d)]
    load_arrays(engine, "t", {**{f: X[:, i] for i, f in enumerate(features)}, "y": y})
    spec = build_spec(d, hidden, ["relu"] * len(hidden), "softmax", classes, 1e-3)
    init = Model(features, "y", "classification", "softmax", list(spec.activations),
                 init_weights(spec, seed), list(range(classes)))  # fmt: skip
    return X, y.astype(float), init


@pytest.mark.parametrize("strategy", ["recursive", "stepwise"])
def test_gathered_gradients_equal_numpy_across_row_groups_blocks_and_threads(strategy):
    """300,000 rows (3 row groups, 74 blocks of 4,096 rows) on two threads: the 12-to-8 layer's
    gradient is gathered, the 8-to-3 one stays one SUM per weight; the weights and losses are numpy's."""
    with gathering_from(DuckDBEngine("duckdb://?threads=2")) as eng:
        X, y, init = _case(eng, 300_000, 12, [8], 3)
        model = train("t", "y", init=init, lr=0.5, l2=1e-3, iterations=3, strategy=strategy, db=eng)
    assert model.training["gathered_layers"] == [1]
    want, losses = R.train_gd(init.weights, init.activations, "softmax", X, y, 0.5, 1e-3, 3)
    assert_weights_close(model.weights, want)
    np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)


def test_gathered_gradients_with_minibatches_validation_and_class_weights(engine):
    """Adam on batches of 400 rows of a validation split, with balanced class weights (the row weight
    goes into the gathered deltas): in 12-10-8-3 the 120- and 80-weight layers are gathered, the
    24-weight output layer is not."""
    X, y, init = setup_case(gathering_from(engine), n=1500, d=12, hidden=(10, 8), act="relu")
    options = dict(
        optimizer="adam", batch_size=400, epochs=2, validation=0.2, seed=4, class_weight="balanced"
    )
    model = train("t", "y", init=init, lr=0.05, l2=1e-3, strategy="recursive", db=engine, **options)
    assert model.training["gathered_layers"] == [1, 2]
    updates = model.training["iterations"]
    rows, _, batches = expected_batches(X, y, 4, 0.2, 400, updates)
    counts = np.bincount(y.astype(int), minlength=3)
    sw = len(y) / (3 * counts[y.astype(int)])
    want, losses = numpy_run(init, X, y, rows, batches, 0.05, updates, sample_weight=sw, optimizer="adam")
    assert_weights_close(model.weights, want)
    np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)


def test_a_unit_dead_on_every_row_gets_a_zero_gradient(engine):
    """A ReLU unit that is off on every row has a list of zero deltas in every block: its weights'
    gradients are 0 (only the penalty moves them), as in numpy."""
    X, y, init = _case(gathering_from(engine), 600, 10, [8], 2)
    w1, b1 = init.weights[0]
    b1 = b1.copy()
    b1[3] = -1e3  # unit 3 never fires
    init.weights[0] = (w1, b1)
    model = train("t", "y", init=init, lr=0.5, l2=1e-3, iterations=2, strategy="recursive", db=engine)
    assert model.training["gathered_layers"] == [1]
    want, _ = R.train_gd(init.weights, init.activations, "softmax", X, y, 0.5, 1e-3, 2)
    assert_weights_close(model.weights, want)


def test_gathering_only_where_declared_wide_and_within_memory():
    duckdb = capabilities_for("duckdb")
    w2 = build_spec(64, [32], ["relu"], "softmax", 10, 0.0)
    program = TrainingProgram(w2, GradientDescent(0.1), duckdb)
    # 64-to-32: 21 products per gathered value; 32-to-10: 7.6, below DuckDB's 12
    assert program.gathered == {} and program.gathered_values == 64 + 32
    on = program.gathering(100_000, 16 * 2**30)
    assert on.gather and sorted(leaf.attrs[0] for leaf in on.gathered) == [1]
    w3 = build_spec(32, [64, 64], ["relu", "relu"], "softmax", 2, 0.0)
    w3_on = TrainingProgram(w3, GradientDescent(0.1), duckdb).gathering(100_000, 16 * 2**30)
    assert sorted(leaf.attrs[0] for leaf in w3_on.gathered) == [1, 2]
    # 10M rows of 96 gathered values would hold about 31 GB: kept as one SUM per weight
    assert not program.gathering(10_000_000, 16 * 2**30).gather
    assert not program.gathering(100_000, None).gather  # an engine that cannot say its memory
    article = build_spec(2, [2], ["relu"], "softmax", 2, 1e-3)
    assert not TrainingProgram(article, GradientDescent(2.0), duckdb).gathering(1000, 2**34).gather
    for dialect in ("postgres", "sqlite", "spark", "mysql"):
        assert not TrainingProgram(w2, GradientDescent(0.1), capabilities_for(dialect)).gatherable
    # the SQL: one GROUP BY block, one list per gathered input and delta, one dot per gathered weight;
    # the 32-to-10 layer's gradient stays one SUM per weight
    inp = PlanInput(on, "data", init_weights(w2, 0), 3, "run")
    sql = " ".join(s.sql("duckdb") for s in PLANS["recursive"].statements(inp))
    assert sql.count('GROUP BY "block"') == 1
    assert sql.count("LIST(") == 96
    assert len(re.findall(r'LIST_INNER_PRODUCT\("\w+_list_\d+", "\w+_list_\d+"\)', sql)) == 64 * 32
    # plans that do not sum through gradient_select never gather
    assert [name for name, plan in PLANS.items() if plan.gathers] == ["recursive", "stepwise", "scripted"]


def test_the_nested_plan_and_a_small_memory_limit_keep_one_sum_per_weight():
    with gathering_from(DuckDBEngine("duckdb://?memory_limit=64MB")) as eng:
        _, _, init = _case(eng, 200, 10, [8], 2)
        small = train("t", "y", init=init, lr=0.5, iterations=2, strategy="recursive", db=eng)
        nested = train("t", "y", init=init, lr=0.5, iterations=2, strategy="nested", db=eng)
    # 200 rows of 18 values fit even in 64 MB; the nested plan never gathers
    assert small.training["gathered_layers"] == [1] and "gathered_layers" not in nested.training
    assert (
        not TrainingProgram(small.spec, GradientDescent(0.5), eng.capabilities)
        .gathering(2_000_000, 64 * 10**6)
        .gather
    )
