"""One suite over every engine: the same model and data give the numpy reference's weights to a relative
1e-9 on DuckDB, SQLite, PostgreSQL and MariaDB, with every strategy the engine runs."""

from __future__ import annotations

import numpy as np
import pytest

import reference as R
from conftest import assert_weights_close, make_classification, make_regression
from engines import open_engine, opened, release, unique
from sqlgrad import Model, evaluate, predict, train
from sqlgrad.errors import UsageError
from sqlgrad.plans import PLANS
from sqlgrad.spec import build_spec, init_weights

ENGINES = ["duckdb", "sqlite", "postgres", "mysql", "spark"]


@pytest.fixture(params=ENGINES)
def eng(request):
    yield from opened(request.param)


def load(engine, columns: dict[str, np.ndarray], kinds: dict[str, str], name: str | None = None) -> str:
    name = name or unique()
    rows = list(zip(*[np.asarray(v).tolist() for v in columns.values()], strict=True))
    engine.create_table(name, [(c, kinds[c]) for c in columns], rows)
    engine.created.append(name)
    return name


def case(head: str, seed: int = 3, n: int = 120, d: int = 3):
    if head == "identity":
        X, y = make_regression(seed, n, d)
    else:
        X, y = make_classification(seed, n, d, 3 if head == "softmax" else 2)
    return X, y


def strategies_of(engine) -> list[str]:
    caps = engine.capabilities
    out = ["stepwise"]
    if caps.recursive_cte and caps.recursive_step:
        out.append("recursive")
    return out


@pytest.mark.parametrize("head", ["softmax", "sigmoid", "identity"])
def test_same_weights_as_numpy(eng, head):
    X, y = case(head)
    kinds = {"a": "float", "b": "float", "c": "float", "t": "float" if head == "identity" else "integer"}
    name = load(eng, {"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "t": y}, kinds)
    classes = None if head == "identity" else sorted(set(y.tolist()))
    n_out = len(classes) if head == "softmax" else 1
    spec = build_spec(3, [4, 3], ["tanh", "relu"], head, n_out, 1e-3)
    task = "regression" if head == "identity" else "classification"
    init = Model(
        features=["a", "b", "c"],
        target="t",
        task=task,
        head=head,
        activations=list(spec.activations),
        weights=init_weights(spec, 5),
        classes=classes,
    )
    want, losses = R.train_gd(init.weights, list(spec.activations), head, X, y.astype(float), 0.3, 1e-3, 6)
    for strategy in strategies_of(eng):
        model = train(name, "t", init=init, lr=0.3, l2=1e-3, iterations=6, strategy=strategy, db=eng)
        assert model.training["strategy"] == strategy
        assert_weights_close(model.weights, want)
        np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)


def test_auto_strategy_follows_capabilities(eng):
    X, y = case("sigmoid")
    name = load(
        eng,
        {"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "t": y},
        {"a": "float", "b": "float", "c": "float", "t": "integer"},
    )
    model = train(name, "t", hidden=[2], iterations=2, db=eng)
    assert model.training["strategy"] == ("recursive" if eng.capabilities.recursive_step else "stepwise")
    if not eng.capabilities.recursive_step:
        with pytest.raises(UsageError, match="stepwise"):
            train(name, "t", hidden=[2], iterations=2, strategy="recursive", db=eng)


def test_text_labels_predict_and_evaluate_in_sql(eng):
    X, y = case("softmax", n=90)
    labels = np.array(["red", "green", "blue"])[y]
    name = load(
        eng,
        {"x 1": X[:, 0], "x2": X[:, 1], "colour": labels},
        {"x 1": "float", "x2": "float", "colour": "text"},
        name=spaced_name(eng, "sg test"),
    )
    model = train(name, "colour", hidden=[3], lr=0.5, iterations=4, db=eng)
    assert model.classes == ["blue", "green", "red"]
    cols, rows = predict(model, name, db=eng)
    assert cols[-4:] == ["predicted_colour", "probability_blue", "probability_green", "probability_red"]
    feats = np.array([[r[0], r[1]] for r in rows], dtype=float)
    probs = R.predict_scores(model.weights, model.activations, "softmax", feats)
    np.testing.assert_allclose(np.array([r[-3:] for r in rows], dtype=float), probs, rtol=1e-9)
    assert [r[-4] for r in rows] == np.array(model.classes)[np.argmax(probs, axis=1)].tolist()
    metrics = evaluate(model, name, db=eng)
    truth = np.array([r[2] for r in rows])
    assert metrics["accuracy"] == pytest.approx(np.mean(np.array([r[-4] for r in rows]) == truth), abs=1e-12)


def test_every_plan_renders_for_the_engine(eng):
    X, y = case("sigmoid", n=20)
    name = load(
        eng,
        {"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "t": y},
        {"a": "float", "b": "float", "c": "float", "t": "integer"},
    )
    model = train(name, "t", hidden=[2], iterations=1, strategy="stepwise", db=eng)
    assert model.training["rows"] == 20
    assert {"nested", "recursive", "stepwise", "scripted"} <= set(PLANS)


@pytest.mark.parametrize("strategy", ["stepwise", "auto"])
def test_no_tables_left_behind(eng, strategy):
    X, y = case("sigmoid", n=30)
    name = load(
        eng,
        {"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "t": y},
        {"a": "float", "b": "float", "c": "float", "t": "integer"},
    )
    if eng.capabilities.dialect == "mysql":
        pytest.skip("MariaDB 10.11 cannot list a session's temporary tables")
    train(name, "t", hidden=[2], iterations=2, strategy=strategy, db=eng)
    evaluate(train(name, "t", hidden=[2], iterations=1, db=eng), name, db=eng)
    for what in ("data", "params", "history", "eval"):
        leftovers = [t for t in _run_tables(eng) if t.startswith("sqlgrad_") and t.endswith(what)]
        assert leftovers == []


def _run_tables(eng) -> list[str]:
    """Tables (temporary ones included) visible to this connection whose names start with sqlgrad_."""
    dialect = eng.capabilities.dialect
    if dialect == "duckdb":
        sql = "SELECT table_name FROM duckdb_tables()"
    elif dialect == "sqlite":
        sql = "SELECT name FROM sqlite_temp_master UNION ALL SELECT name FROM sqlite_master"
    elif dialect == "spark":
        return [str(r[1]) for r in eng.query("SHOW TABLES")]
    else:
        sql = "SELECT relname FROM pg_class WHERE relkind = 'r' AND relpersistence = 't'"
    return [str(r[0]) for r in eng.query(sql)]


def spaced_name(eng, prefix: str) -> str:
    """A table name with a space, except on Spark, whose catalog refuses one (a known gap:
    INVALID_SCHEMA_OR_RELATION_NAME)."""
    return unique(prefix.replace(" ", "_")) if eng.capabilities.dialect == "spark" else unique(prefix)


@pytest.mark.parametrize("name", ENGINES)
def test_cli_load_then_train_in_place(name, tmp_path, capsys):
    from engines import URLS
    from sqlgrad.cli import main

    url = {"duckdb": f"duckdb:///{tmp_path / 'l.db'}", "sqlite": f"sqlite:///{tmp_path / 'l.db'}"}.get(
        name, URLS[name]
    )
    release(open_engine(name))  # skips (outside CI) or fails (in CI) when a server is down
    X, y = case("softmax", n=60)
    csv_path = tmp_path / "pts.csv"
    with open(csv_path, "w") as fh:
        fh.write("a,b,kind\n")
        for (a, b, _), lab in zip(X.tolist(), y.tolist(), strict=True):
            fh.write(f"{a!r},{b!r},{['x', 'y', 'z'][lab]}\n")
    tbl = unique("sg load") if name != "spark" else unique("sg_load")
    try:
        assert main(["load", str(csv_path), "--db", url, "--table", tbl]) == 0
        assert f"loaded 60 rows into {tbl}" in capsys.readouterr().out
        assert main(["load", str(csv_path), "--db", url, "--table", tbl]) == 2
        assert "already exists" in capsys.readouterr().err
        assert main(["load", str(csv_path), "--db", url, "--table", tbl, "--replace"]) == 0
        model_path = str(tmp_path / "m.json")
        code = main(
            [
                "train",
                tbl,
                "--db",
                url,
                "--target",
                "kind",
                "--hidden",
                "3",
                "--iterations",
                "3",
                "-o",
                model_path,
                "--quiet",
            ]
        )
        assert code == 0, capsys.readouterr().err
        model = Model.load(model_path)
        assert model.classes == ["x", "y", "z"] and model.features == ["a", "b"]
        assert main(["evaluate", model_path, tbl, "--db", url]) == 0
        assert "accuracy" in capsys.readouterr().out
    finally:
        e = open_engine(name)
        e.drop_table(tbl)
        release(e)


def test_training_on_a_connection_the_caller_holds():
    """A DuckDB connection is used as it is and left open; other objects are refused in one line."""
    import duckdb

    from sqlgrad.engines import connect
    from sqlgrad.errors import EngineError

    con = duckdb.connect()
    con.execute(
        "CREATE TABLE pts AS SELECT i / 10.0 AS x, CASE WHEN i >= 20 THEN 'b' ELSE 'a' END AS y "
        "FROM range(40) t(i)"
    )
    model = train("pts", "y", hidden=[2], iterations=3, db=con)
    assert model.classes == ["a", "b"]
    assert con.execute("SELECT COUNT(*) FROM pts").fetchone() == (40,)  # still open, table untouched
    with pytest.raises(EngineError, match="cannot use a dict"):
        connect({"url": "duckdb://"})


def test_duckdb_plans_training_without_its_common_subexpression_pass_and_puts_the_setting_back():
    """``disabled_optimizers`` (global to the DuckDB instance) gains ``common_subexpressions`` while the
    training statements run, and is the caller's own value again afterwards, also after a failure."""
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE pts AS SELECT i / 10.0 AS x, i % 2 AS y FROM range(40) t(i)")
    con.execute("SET disabled_optimizers = 'top_n'")
    other = con.cursor()  # another connection to the instance sees the setting

    def setting():
        return other.execute("SELECT current_setting('disabled_optimizers')").fetchall()[0][0]

    during = []
    train("pts", "y", hidden=[2], iterations=3, db=con, progress=lambda *_: during.append(setting()))
    # the first report (update 0) comes before the statements are planned
    assert len(during) > 1 and all(
        set(s.split(",")) == {"top_n", "common_subexpressions"} for s in during[1:]
    )
    assert setting() == "top_n"

    def fail(*_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train("pts", "y", hidden=[2], iterations=3, db=con, progress=fail)
    assert setting() == "top_n"
    con.execute("RESET disabled_optimizers")
    train("pts", "y", hidden=[2], iterations=2, db=con)
    assert setting() == ""
