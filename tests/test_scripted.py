"""The ``scripted`` plan: the training loop as one PL/pgSQL ``DO`` block on the machine's real PostgreSQL
(required in CI, skipped elsewhere when the server is down) and as one BigQuery multi-statement query
(through the fake connection of ``tests/fakes.py``), equal to numpy to 1e-9; refused where the engine
has no scripting; never picked by ``auto``."""

from __future__ import annotations

import numpy as np
import pytest

import reference as R
from conftest import assert_weights_close, make_classification
from engines import opened, unique
from fakes import FakeBigQueryConnection
from sqlgrad import Model, train
from sqlgrad.engines import connect
from sqlgrad.engines.bigquery import BigQueryEngine
from sqlgrad.engines.postgres import PostgresEngine
from sqlgrad.errors import UsageError
from sqlgrad.optim import Adam, GradientDescent
from sqlgrad.plans import PLANS, PlanInput, TrainingProgram, choose
from sqlgrad.plans.base import create_state, read_state
from sqlgrad.spec import build_spec, init_weights


@pytest.fixture
def pg():
    yield from opened("postgres")


def points(engine, n: int = 150, classes: int = 3) -> tuple[str, np.ndarray, np.ndarray]:
    X, y = make_classification(11, n, 3, classes)
    name = unique()
    rows = list(zip(X[:, 0].tolist(), X[:, 1].tolist(), X[:, 2].tolist(), y.tolist(), strict=True))
    engine.create_table(name, [("a", "float"), ("b", "float"), ("c", "float"), ("t", "integer")], rows)
    if hasattr(engine, "created"):
        engine.created.append(name)
    return name, X, y


def start(head: str, n_out: int) -> Model:
    spec = build_spec(3, [4, 3], ["tanh", "relu"], head, n_out, 1e-3)
    return Model(
        features=["a", "b", "c"],
        target="t",
        task="classification",
        head=head,
        activations=list(spec.activations),
        weights=init_weights(spec, 2),
        classes=list(range(n_out)) if head == "softmax" else [0, 1],
    )


def record(engine) -> list[str]:
    """Every SQL text the engine sends from now on."""
    sent: list[str] = []
    execute = engine._execute

    def spy(sql: str):
        sent.append(sql)
        return execute(sql)

    engine._execute = spy
    return sent


@pytest.mark.parametrize("head", ["softmax", "sigmoid"])
def test_plpgsql_block_equals_numpy(pg, head):
    name, X, y = points(pg, classes=3 if head == "softmax" else 2)
    init = start(head, 3 if head == "softmax" else 1)
    want, losses = R.train_gd(init.weights, init.activations, head, X, y.astype(float), 0.3, 1e-3, 8)
    sent = record(pg)
    model = train(name, "t", init=init, lr=0.3, l2=1e-3, iterations=8, strategy="scripted", db=pg)
    assert_weights_close(model.weights, want)
    np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)
    blocks = [s for s in sent if s.startswith("DO $")]
    assert len(blocks) == 1 and "FOR sqlgrad_step IN 1..8 LOOP" in blocks[0]
    # the 8 updates ran inside the block: no other statement sent an INSERT
    assert not any(s.startswith("INSERT") for s in sent)
    leftovers = pg.query(
        "SELECT relname FROM pg_class WHERE relpersistence = 't' AND relname LIKE 'sqlgrad_%'"
    )
    assert leftovers == []


def test_plpgsql_carries_optimizer_state(pg):
    name, X, y = points(pg)
    init = start("softmax", 3)
    want, losses = R.train(
        init.weights, init.activations, "softmax", X, y.astype(float), 0.05, 7, optimizer="adam"
    )
    model = train(name, "t", init=init, optimizer=Adam(0.05), iterations=7, strategy="scripted", db=pg)
    assert_weights_close(model.weights, want)
    np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)


def test_two_scripts_in_a_row_equal_one_run(pg):
    """``advance`` from the state row of a previous chunk (the checkpoint contract of the plans)."""
    name, X, y = points(pg)
    init = start("softmax", 3)
    want, losses = R.train_gd(init.weights, init.activations, "softmax", X, y.astype(float), 0.3, 0.0, 6)
    spec = build_spec(3, [4, 3], ["tanh", "relu"], "softmax", 3, 0.0)
    prog = TrainingProgram(spec, GradientDescent(0.3), pg.capabilities)
    data = unique("sqlgrad_data")
    pg.execute(
        f'CREATE TEMPORARY TABLE "{data}" AS SELECT a AS x_0, b AS x_1, c AS x_2, t AS y FROM "{name}"'
    )
    inp = PlanInput(prog, data, init.weights, 6, unique("sqlgrad"))
    state = inp.table_name("state")
    plan = PLANS["scripted"]
    try:
        create_state(pg, state, prog.init_select(init.weights))
        seen: list[tuple[int, float]] = []
        history = plan.advance(pg, inp, state, 0, 2, lambda k, loss: seen.append((k, loss)))
        history += plan.advance(pg, inp, state, 2, 4)
        assert pg.scalar(f'SELECT COUNT(*) FROM "{state}"') == 1
        row = read_state(pg, state, 6)
    finally:
        pg.drop_table(state)
        pg.drop_table(data)
    assert [k for k, _ in history] == list(range(6)) and seen == [(2, history[1][1])]
    np.testing.assert_allclose([v for _, v in history], losses, rtol=1e-9)
    assert_weights_close(prog.weights_from_row(prog.param_values(row)), want)


def test_bigquery_script_is_one_job_equal_to_numpy():
    con = FakeBigQueryConnection("proj", "ds")
    engine = BigQueryEngine("bigquery://proj/ds", connection=con)
    name, X, y = points(engine)
    init = start("softmax", 3)
    want, losses = R.train_gd(init.weights, init.activations, "softmax", X, y.astype(float), 0.3, 1e-3, 5)
    loaded = len(con.jobs)
    model = train(name, "t", init=init, lr=0.3, l2=1e-3, iterations=5, strategy="scripted", db=engine)
    assert_weights_close(model.weights, want)
    np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)
    scripts = [sql for sql, _ in con.jobs if sql.startswith("DECLARE")]
    assert len(scripts) == 1 and "WHILE sqlgrad_step < 5 DO" in scripts[0]
    assert not any(sql.startswith("INSERT") for sql, _ in con.jobs[loaded:])  # the updates ran in the script


def test_refused_without_scripting_and_never_auto():
    eng = connect("duckdb://")
    eng.execute("CREATE TABLE pts AS SELECT i / 10.0 AS x, i % 2 AS y FROM range(20) t(i)")
    with pytest.raises(UsageError, match="needs an engine with scripting"):
        train("pts", "y", hidden=[2], iterations=2, strategy="scripted", db=eng)
    eng.close()
    for caps in (PostgresEngine.capabilities, BigQueryEngine.capabilities):
        assert caps.scripting is not None
        for iterations in (1, 100, 10_000):
            assert choose("auto", caps, iterations).name != "scripted"
    assert choose("scripted", PostgresEngine.capabilities, 5).name == "scripted"
