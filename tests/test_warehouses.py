"""The BigQuery and Trino adapters, exercised through fake DB-API connections that run the SQL they send
on DuckDB (``tests/fakes.py``): training through each adapter reproduces numpy's weights to 1e-9, and the
engine rules each adapter is built around (BigQuery sessions and dry runs, Trino's missing temporary
tables and DELETE, results fetched to the end) hold. No network: the official drivers are never asked
to connect."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import reference as R
from conftest import assert_weights_close, make_classification, make_regression
from fakes import FakeBigQueryConnection, FakeTrinoConnection
from sqlgrad import Model, evaluate, predict, train
from sqlgrad.engines import connect
from sqlgrad.engines.bigquery import BigQueryEngine
from sqlgrad.engines.bigquery import parse_url as bigquery_url
from sqlgrad.engines.trino import TrinoEngine
from sqlgrad.engines.trino import parse_url as trino_url
from sqlgrad.errors import EngineError, MissingDriverError, UsageError
from sqlgrad.spec import build_spec, init_weights
from sqlgrad.sqlexpr import table

ARTICLE_INIT = os.path.join(os.path.dirname(__file__), "..", "examples", "article", "init.json")
BIGQUERY_URL = "bigquery://proj/ds"
TRINO_URL = "trino://ana@trino.example:8080/memory/default"


def bigquery() -> tuple[BigQueryEngine, FakeBigQueryConnection]:
    con = FakeBigQueryConnection("proj", "ds")
    return BigQueryEngine(BIGQUERY_URL, connection=con), con


def trino() -> tuple[TrinoEngine, FakeTrinoConnection]:
    con = FakeTrinoConnection()
    return TrinoEngine(TRINO_URL, connection=con), con


ENGINES = {"bigquery": bigquery, "trino": trino}


def load(engine, head: str, n: int = 120) -> np.ndarray:
    if head == "identity":
        X, y = make_regression(3, n, 3)
    else:
        X, y = make_classification(3, n, 3, 3 if head == "softmax" else 2)
    kinds = [
        ("a", "float"),
        ("b", "float"),
        ("c", "float"),
        ("t", "float" if head == "identity" else "integer"),
    ]
    rows = list(zip(X[:, 0].tolist(), X[:, 1].tolist(), X[:, 2].tolist(), y.tolist(), strict=True))
    assert engine.create_table("pts", kinds, rows) == n
    return X, y


def initial(head: str, classes: list | None) -> Model:
    n_out = len(classes) if head == "softmax" else 1
    spec = build_spec(3, [4, 3], ["tanh", "relu"], head, n_out, 1e-3)
    return Model(
        features=["a", "b", "c"],
        target="t",
        task="regression" if head == "identity" else "classification",
        head=head,
        activations=list(spec.activations),
        weights=init_weights(spec, 5),
        classes=classes,
    )


CASES = [
    ("bigquery", "softmax", "stepwise"),
    ("bigquery", "softmax", "scripted"),
    ("bigquery", "sigmoid", "stepwise"),
    ("bigquery", "identity", "scripted"),
    ("trino", "softmax", "stepwise"),
    ("trino", "sigmoid", "stepwise"),
    ("trino", "identity", "stepwise"),
]


@pytest.mark.parametrize(("name", "head", "strategy"), CASES)
def test_training_through_the_adapter_equals_numpy(name, head, strategy):
    engine, _ = ENGINES[name]()
    X, y = load(engine, head)
    classes = None if head == "identity" else sorted(set(y.tolist()))
    init = initial(head, classes)
    want, losses = R.train_gd(init.weights, init.activations, head, X, y.astype(float), 0.3, 1e-3, 6)
    model = train("pts", "t", init=init, lr=0.3, l2=1e-3, iterations=6, strategy=strategy, db=engine)
    assert model.training["strategy"] == strategy
    assert_weights_close(model.weights, want)
    np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)


def test_the_articles_nested_query_through_bigquery():
    """The article's single query (window sums, one nesting level per iteration) on the article's 2-2-2
    network; few iterations, because the fake re-parses the deep query with sqlglot."""
    engine, _ = bigquery()
    X, y = make_classification(7, 80, 2, 2)
    engine.create_table(
        "pts",
        [("a", "float"), ("b", "float"), ("t", "integer")],
        list(zip(*X.T.tolist(), y.tolist(), strict=True)),
    )
    init = Model.load(ARTICLE_INIT)
    init.features, init.target = ["a", "b"], "t"
    want, losses = R.train_gd(init.weights, ["relu"], "softmax", X, y.astype(float), 2.0, 1e-3, 3)
    model = train("pts", "t", init=init, lr=2.0, l2=1e-3, iterations=3, strategy="nested", db=engine)
    assert_weights_close(model.weights, want)
    np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)


@pytest.mark.parametrize("name", ENGINES)
def test_auto_picks_stepwise_and_recursive_is_refused(name):
    engine, _ = ENGINES[name]()
    load(engine, "sigmoid", n=40)
    assert train("pts", "t", hidden=[2], iterations=2, db=engine).training["strategy"] == "stepwise"
    with pytest.raises(UsageError, match="stepwise"):
        train("pts", "t", hidden=[2], iterations=2, strategy="recursive", db=engine)


@pytest.mark.parametrize("name", ENGINES)
def test_predict_and_evaluate_in_sql(name):
    engine, _ = ENGINES[name]()
    load(engine, "softmax", n=60)
    model = train("pts", "t", hidden=[3], lr=0.5, iterations=3, db=engine)
    cols, rows = predict(model, "pts", db=engine)
    assert cols[-4:] == ["predicted_t", "probability_0", "probability_1", "probability_2"]
    probs = R.predict_scores(model.weights, model.activations, "softmax", np.array([r[:3] for r in rows]))
    np.testing.assert_allclose(np.array([r[-3:] for r in rows], dtype=float), probs, rtol=1e-9)
    metrics = evaluate(model, "pts", db=engine)
    assert metrics["n"] == 60
    assert metrics["accuracy"] == pytest.approx(
        np.mean(np.argmax(probs, axis=1) == np.array([r[3] for r in rows]))
    )


def test_bigquery_runs_every_job_in_one_session_and_ends_it():
    engine, con = bigquery()
    load(engine, "sigmoid", n=30)
    train("pts", "t", hidden=[2], iterations=2, strategy="scripted", db=engine)
    first, *others = con.jobs
    assert first[1].create_session and not first[1].connection_properties
    session = engine.session_id
    assert session and session in con.sessions
    for sql, config in others:
        assert [(p.key, p.value) for p in config.connection_properties] == [("session_id", session)], sql
        assert str(config.default_dataset) == "proj.ds"
    # column types are read with dry runs, which BigQuery does not bill
    assert any(config.dry_run for _, config in others)
    assert not any("LIMIT 0" in sql for sql, _ in others)
    assert con.temp_tables() == []  # the run dropped its tables
    con.duck.execute("CREATE TEMPORARY TABLE leftover AS SELECT 1 AS x")
    engine.close()
    assert con.aborted == [session] and con.temp_tables() == [] and not con.closed


def test_bigquery_maximum_bytes_billed_reaches_every_job():
    con = FakeBigQueryConnection("proj", "ds")
    engine = BigQueryEngine(BIGQUERY_URL + "?maximum_bytes_billed=1000000&location=EU", connection=con)
    engine.query("SELECT 1")
    assert engine.location == "EU"
    assert [c.maximum_bytes_billed for _, c in con.jobs] == [1_000_000, 1_000_000]


def test_bigquery_column_types_map_to_kinds():
    engine, con = bigquery()
    con.duck.execute("CREATE TABLE t AS SELECT 1.5::DOUBLE AS f, 2::BIGINT AS i, 'x' AS s, TRUE AS b")
    assert [(c.name, c.type, c.kind) for c in engine.describe(table("t"))] == [
        ("f", "DOUBLE", "float"),
        ("i", "BIGINT", "integer"),
        ("s", "VARCHAR", "text"),
        ("b", "BOOLEAN", "boolean"),
    ]


def test_trino_uses_plain_tables_fetches_everything_and_drops_its_tables():
    engine, con = trino()
    load(engine, "softmax", n=40)
    train("pts", "t", hidden=[2], iterations=3, db=engine)
    assert con.abandoned == 0
    assert not any("TEMPORARY" in s.upper() or s.upper().startswith("DELETE") for s in con.statements)
    assert sorted(con.tables()) == ["pts"]


@pytest.mark.parametrize("name", ENGINES)
def test_rows_load_exactly_in_batches(name):
    engine, con = ENGINES[name]()
    values = [0.1, -1e-300, 1 / 3, 2.5e300, -0.0, float("inf")]
    rows = [(i, v, f"it's {i}", i % 2 == 0, None) for i, v in enumerate(values * 50)]
    kinds = [("i", "integer"), ("v", "float"), ("s", "text"), ("b", "boolean"), ("n", "float")]
    from sqlgrad.engines.warehouse import create_table_with_values

    assert create_table_with_values(engine, "loaded", kinds, rows, max_chars=500) == 300
    inserts = [s for s in con.statements if s.upper().startswith("INSERT")]
    assert len(inserts) > 10  # batched by size
    got = con.duck.execute("SELECT * FROM loaded ORDER BY i").fetchall()
    assert got == rows


def test_missing_drivers_name_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.cloud.bigquery", None)
    with pytest.raises(MissingDriverError, match=r"pip install 'sqlgrad\[bigquery\]'"):
        connect(BIGQUERY_URL)
    monkeypatch.setitem(sys.modules, "trino", None)
    with pytest.raises(MissingDriverError, match=r"pip install 'sqlgrad\[trino\]'"):
        connect(TRINO_URL)


def test_urls():
    assert bigquery_url("bigquery://p/d") == ("p", "d", {})
    assert trino_url("trino://u:s%40cret@h/cat/sch") == {
        "host": "h",
        "user": "u",
        "catalog": "cat",
        "schema": "sch",
        "http_scheme": "https",
        "port": 443,
        "password": "s@cret",
    }
    assert trino_url("trino://u@h/c/s?verify=false&source=me")["verify"] is False
    for bad in ("bigquery://p", "bigquery://p/d/x", "bigquery://p/d?colour=red"):
        with pytest.raises(EngineError, match="BigQuery"):
            BigQueryEngine(bad, connection=FakeBigQueryConnection())
    for bad in ("trino://h:8080/c/s", "trino://u@h:8080/c", "trino://u@h:x/c/s", "trino://u@h/c/s?x=1"):
        with pytest.raises(EngineError, match="Trino") as info:
            trino_url(bad)
        assert "secret" not in str(info.value)
    with pytest.raises(EngineError) as info:
        trino_url("trino://u:secret@h:x/c/s")
    assert "secret" not in str(info.value)
