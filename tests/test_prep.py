"""Feature preparation in SQL folded into the model: standardisation, booleans, one-hot text columns,
imputation and dropped NULL rows; prediction on raw rows against numpy; the model file's
``preprocessing`` section; the command line's defaults and one-line errors."""

from __future__ import annotations

import csv
import io
import json
import os

import duckdb
import numpy as np
import pytest
import sqlglot

import prep_reference as P
import reference as R
from conftest import assert_weights_close
from sqlgrad import Model, evaluate, predict, train
from sqlgrad.cli import main
from sqlgrad.data import ColumnPrep
from sqlgrad.engines.duckdb import DuckDBEngine
from sqlgrad.engines.sqlite import SQLiteEngine
from sqlgrad.errors import ColumnNotFoundError, DataError, ModelFileError, UsageError
from sqlgrad.spec import build_spec, init_weights

KINDS = {float: "float", int: "integer", bool: "boolean", str: "text"}


def make_table(engine, name: str, data: dict[str, list], kinds: dict[str, str] | None = None) -> None:
    kinds = kinds or {}
    columns = []
    for c, values in data.items():
        if c not in kinds:
            kinds[c] = KINDS[type(next(v for v in values if v is not None))]
        columns.append((c, kinds[c]))
    engine.create_table(name, columns, list(zip(*data.values(), strict=True)))


def mixed_data(n: int = 150, seed: int = 0) -> dict[str, list]:
    """Numeric columns far from unit scale, a text column, a boolean column and a text label."""
    rng = np.random.default_rng(seed)
    big = 1000 + 50 * rng.normal(size=n)
    small = -3 + 0.01 * rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue", "violet"], size=n, p=[0.4, 0.3, 0.2, 0.1])
    flag = rng.random(n) < 0.5
    score = (big - 1000) / 50 + (small + 3) / 0.01 + (colour == "red") + flag
    label = np.where(score > 1, "high", np.where(score < -1, "low", "mid"))
    return {
        "big one": big.tolist(),
        "small": small.tolist(),
        "colour": colour.tolist(),
        "flag": flag.tolist(),
        "label": label.tolist(),
    }


def class_index(labels: list, classes: list) -> np.ndarray:
    return np.array([classes.index(v) for v in labels], dtype=float)


# --- standardisation, one-hot and booleans against numpy --------------------------------------------------


@pytest.mark.parametrize("eng_cls", [DuckDBEngine, SQLiteEngine])
def test_standardized_training_and_raw_prediction_equal_numpy(eng_cls):
    data = mixed_data()
    with eng_cls() as eng:
        make_table(eng, "pts", data)
        model = train(
            "pts", "label", hidden=[4], activation="tanh", lr=0.3, l2=1e-3, iterations=8, seed=4,
            standardize=True, max_categories=2, db=eng,
        )  # fmt: skip
        preps = model.preprocessing
        assert [p.column for p in preps] == model.features == ["big one", "small", "colour", "flag"]
        # SQLite stores booleans as integers: a numeric 0/1 feature there
        flag = "boolean" if eng_cls is DuckDBEngine else "numeric"
        assert [p.kind for p in preps] == ["numeric", "numeric", "categorical", flag]
        for p in preps[:2]:
            x = np.array(data[p.column])
            assert p.mean == pytest.approx(np.mean(x), rel=1e-12)
            assert p.std == pytest.approx(np.std(x), rel=1e-12)
        cats, other = P.top_categories(data["colour"], 2)
        assert list(preps[2].categories) == cats and preps[2].other is other is True
        assert (preps[3].mean is None) is (flag == "boolean")

        # numpy: the same encoding and standardisation, then the same gradient descent from the same init
        X = P.inputs(data, preps, standardized=True)
        assert X.shape == (150, 6)
        spec = build_spec(6, [4], "tanh", "softmax", 3, 1e-3)
        y = class_index(data["label"], model.classes)
        want, losses = R.train_gd(init_weights(spec, 4), ["tanh"], "softmax", X, y, 0.3, 1e-3, 8)
        np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)
        assert_weights_close(model.weights, P.fold(want, preps))

        # prediction takes raw rows: the folded weights on raw inputs equal numpy's standardised pass
        cols, rows = predict(model, "pts", db=eng)
        probs = R.predict_scores(want, ["tanh"], "softmax", X)
        np.testing.assert_allclose(np.array([r[-3:] for r in rows], dtype=float), probs, rtol=1e-9)
        assert [r[cols.index("predicted_label")] for r in rows] == [
            model.classes[k] for k in np.argmax(probs, axis=1)
        ]
        raw = R.predict_scores(model.weights, ["tanh"], "softmax", P.inputs(data, preps))
        np.testing.assert_allclose(raw, probs, rtol=1e-9)
        metrics = evaluate(model, "pts", db=eng)
        assert metrics["log_loss"] == pytest.approx(
            -np.mean(np.log(probs[np.arange(150), y.astype(int)])), rel=1e-9
        )


def test_constant_column_is_centred_not_scaled(engine):
    data = {"x": [1.0, 2.0, 3.0, 4.0], "k": [7.0] * 4, "y": [0, 1, 0, 1]}
    make_table(engine, "c", data)
    model = train("c", "y", iterations=2, standardize=True, db=engine)
    k = model.preprocessing[1]
    assert (k.mean, k.std, k.constant) == (7.0, 1.0, True)
    assert any("'k' is constant" in n for n in model.training["notes"])
    assert not model.weights[0][0][1].any()  # its standardised input was 0: no weight once folded
    assert Model.from_dict(model.to_dict()).preprocessing == model.preprocessing


def test_no_section_without_preparation(engine):
    """Plain numeric features and no standardisation: the model file is the same as before."""
    make_table(engine, "p", {"a": [0.5, 1.5, -2.0, 3.0], "y": [0, 1, 0, 1]})
    model = train("p", "y", iterations=2, db=engine)
    assert model.preprocessing is None and "preprocessing" not in model.to_dict()


# --- text columns: categories, other, unseen values ---------------------------------------------------


def test_unseen_and_rare_categories(engine):
    colours = ["red"] * 6 + ["green"] * 5 + ["blue"] * 4 + ["cyan"] * 4 + ["pink"]
    n = len(colours)
    x = np.linspace(-1, 1, n).tolist()
    y = [int(c in ("red", "cyan")) for c in colours]
    make_table(engine, "tr", {"x": x, "colour": colours, "y": y})
    model = train("tr", "y", hidden=[3], iterations=5, max_categories=3, db=engine)
    p = model.preprocessing[1]
    assert p.categories == ("red", "green", "blue") and p.other  # blue/cyan tie: value order
    assert p.input_names()[-1] == "colour=<other>"

    make_table(
        engine,
        "new",
        {"x": [0.25] * 5, "colour": ["cyan", "pink", "never seen", "red", None]},
        {"x": "float"},
    )
    _, rows = predict(model, "new", db=engine)
    probs = [r[-2:] for r in rows]
    assert probs[0] == probs[1] == probs[2]  # rare and unseen values are all "other"
    assert probs[3] != probs[0]
    assert probs[4] == (None, None)  # a NULL without a fill gives a NULL prediction
    want = R.predict_scores(
        model.weights,
        model.activations,
        model.head,
        P.inputs({"x": [0.25] * 4, "colour": ["cyan", "pink", "never seen", "red"]}, model.preprocessing),
    )
    np.testing.assert_allclose(np.array(probs[:4], dtype=float), want, rtol=1e-9)

    # every value fits: no "other" input, and an unseen value has all one-hot inputs at 0
    model = train("tr", "y", hidden=[3], iterations=5, db=engine)
    p = model.preprocessing[1]
    assert not p.other and len(p.categories) == 5 and model.spec.n_inputs == 6
    _, rows = predict(model, "new", db=engine)
    zero = R.predict_scores(model.weights, model.activations, model.head, np.array([[0.25, 0, 0, 0, 0, 0]]))
    np.testing.assert_allclose(np.array(rows[2][-2:], dtype=float), zero[0], rtol=1e-9)


def test_category_values_are_data_not_sql(engine):
    odd = ["it's", 'say "hi"', "a;DROP TABLE t;--", "naïve ☃", ""]
    values = [odd[i % 5] for i in range(40)]
    make_table(
        engine, "odd", {"x": [float(i % 3) for i in range(40)], "c": values, "y": [i % 2 for i in range(40)]}
    )
    model = train("odd", "y", iterations=3, db=engine)
    assert sorted(model.preprocessing[1].categories) == sorted(odd)
    _, rows = predict(model, "odd", db=engine)
    X = P.inputs({"x": [float(i % 3) for i in range(40)], "c": values}, model.preprocessing)
    want = R.predict_scores(model.weights, model.activations, model.head, X)
    np.testing.assert_allclose(np.array([r[-2:] for r in rows], dtype=float), want, rtol=1e-9)


# --- NULLs: imputation and dropped rows --------------------------------------------------------------------


def nully_data() -> dict[str, list]:
    return {
        "odd": [1.5, None, 3.0, -7.25, 2.0, None, 10.0, 0.5, 3.0],  # 7 values: a true middle
        "even": [None, 4.0, 1.0, 8.0, None, 2.0, 2.0, 6.0, 9.0],  # 7 values
        "pairs": [4.0, 1.0, None, 2.0, 9.0, 3.0, None, None, 5.0],  # 6 values: mean of the middle two
        "ties": [5, 3, 5, 3, None, 1, 1, 8, 2],  # 3 and 5 and 1 twice: the smallest wins
        "word": ["b", "a", None, "b", "a", "c", "c", None, "z"],
        "on": [True, None, False, True, False, None, False, True, True],
        "y": ["yes", "no", "yes", "no", "yes", "no", "yes", "no", "yes"],
    }


@pytest.mark.parametrize("eng_cls", [DuckDBEngine, SQLiteEngine])  # PERCENTILE_CONT / the window fallback
@pytest.mark.parametrize("strategy", ["mean", "median", "most-frequent"])
def test_imputation_values_equal_numpy(eng_cls, strategy):
    data = nully_data()
    with eng_cls() as eng:
        make_table(eng, "n", data)
        model = train("n", "y", iterations=3, impute=strategy, db=eng)
        fills = {p.column: p.fill for p in model.preprocessing}
        for c in ("odd", "even", "pairs", "ties"):
            assert fills[c] == pytest.approx(P.fill_value(data[c], strategy), rel=1e-13), c
        assert fills["word"] == P.mode(data["word"]) == "a"  # a, b, c twice: value order
        if eng_cls is DuckDBEngine:
            assert fills["on"] is P.mode(data["on"]) is True  # booleans: the most frequent value
        else:  # SQLite stores booleans as integers: a numeric column
            assert fills["on"] == pytest.approx(P.fill_value(data["on"], strategy), rel=1e-13)
        # the fills are applied at prediction time too (COALESCE), on raw rows with NULLs
        _, rows = predict(model, "n", db=eng)
        X = P.inputs(data, model.preprocessing)
        assert not np.isnan(X).any()
        want = R.predict_scores(model.weights, model.activations, model.head, X)
        np.testing.assert_allclose(np.array([r[-2:] for r in rows], dtype=float), want, rtol=1e-9)


def test_mean_imputation_then_standardisation_equals_numpy(engine):
    data = nully_data()
    make_table(engine, "n", data)
    model = train("n", "y", iterations=4, lr=0.2, impute="mean", standardize=True, seed=2, db=engine)
    odd = model.preprocessing[0]
    filled = np.array([odd.fill if v is None else v for v in data["odd"]])
    assert (odd.mean, odd.std) == (
        pytest.approx(filled.mean(), rel=1e-12),
        pytest.approx(filled.std(), rel=1e-12),
    )
    X = P.inputs(data, model.preprocessing, standardized=True)
    spec = build_spec(X.shape[1], [], "relu", "softmax", 2)
    want, _ = R.train_gd(
        init_weights(spec, 2), ["relu"], "softmax", X, class_index(data["y"], ["no", "yes"]), 0.2, 0.0, 4
    )
    assert_weights_close(model.weights, P.fold(want, model.preprocessing))


def test_null_policy(engine):
    data = nully_data()
    data["y"][2] = None
    make_table(engine, "n", data)
    with pytest.raises(DataError, match=r"column 'odd' has 2 NULL values; .*--impute or --drop-nulls"):
        train("n", "y", iterations=1, db=engine)
    with pytest.raises(DataError, match=r"column 'y' has 1 NULL values; .*--drop-nulls"):
        train("n", "y", iterations=1, impute="mean", db=engine)
    # drop: every row with a NULL in a used column
    model = train("n", "y", features=["odd", "even", "word"], iterations=1, drop_nulls=True, db=engine)
    keep = [i for i in range(9) if all(data[c][i] is not None for c in ("odd", "even", "word", "y"))]
    assert model.training["rows"] == len(keep) == 3
    assert f"skipped {9 - len(keep)} rows with NULL values (--drop-nulls)" in model.training["notes"]
    # impute and drop: only the rows whose target is NULL go
    model = train("n", "y", iterations=1, impute="median", drop_nulls=True, db=engine)
    assert model.training["rows"] == 8
    # the fills are computed over the rows kept
    kept = [v for v, t in zip(data["odd"], data["y"], strict=True) if t is not None]
    assert model.preprocessing[0].fill == P.fill_value(kept, "median")
    make_table(engine, "empty_word", {"x": [1.0, 2.0], "w": [None, None], "y": [0, 1]}, {"w": "text"})
    with pytest.raises(DataError, match="'w' has only NULL values"):
        train("empty_word", "y", iterations=1, impute="mean", db=engine)
    with pytest.raises(DataError, match="every row"):
        train("empty_word", "y", iterations=1, drop_nulls=True, db=engine)


def test_evaluate_uses_the_models_fills(engine):
    data = nully_data()
    make_table(engine, "n", data)
    model = train("n", "y", iterations=3, impute="mean", db=engine)
    X = P.inputs(data, model.preprocessing)
    probs = R.predict_scores(model.weights, model.activations, model.head, X)
    y = class_index(data["y"], model.classes).astype(int)
    metrics = evaluate(model, "n", db=engine)
    assert metrics["accuracy"] == pytest.approx(np.mean(np.argmax(probs, axis=1) == y), abs=1e-12)
    assert metrics["log_loss"] == pytest.approx(-np.mean(np.log(probs[np.arange(9), y])), rel=1e-9)


# --- columns: inference, exclusion, types -------------------------------------------------------------------


def test_feature_inference_and_exclude(engine):
    engine.connection.execute(
        "CREATE TABLE t AS SELECT i AS id, i / 10.0 AS x, ['a', 'b'][i % 2 + 1] AS kind, "
        "DATE '2020-01-01' + CAST(i AS INTEGER) AS day, i % 3 = 0 AS y FROM range(30) t(i)"
    )
    with pytest.raises(DataError, match=r"'day' is DATE: dates and times .*--exclude day"):
        train("t", "y", iterations=1, db=engine)
    with pytest.raises(DataError, match=r"'day' is DATE.*out of --features"):
        train("t", "y", features=["x", "day"], iterations=1, db=engine)
    model = train("t", "y", iterations=1, exclude=["id", "day"], db=engine)
    assert model.features == ["x", "kind"] and model.classes == [False, True]
    with pytest.raises(ColumnNotFoundError, match="'nope'"):
        train("t", "y", exclude=["nope"], db=engine)
    with pytest.raises(UsageError, match="not both"):
        train("t", "y", features=["x"], exclude=["id"], db=engine)
    with pytest.raises(UsageError, match="max categories"):
        train("t", "y", features=["x"], max_categories=0, db=engine)
    with pytest.raises(UsageError, match="unknown imputation"):
        train("t", "y", features=["x"], impute="zero", db=engine)


def test_boolean_features_and_labels(engine):
    engine.connection.execute(
        "CREATE TABLE b AS SELECT i % 2 = 0 AS even, i % 3 = 0 AS third, (i % 2 = 0) <> (i % 3 = 0) AS y "
        "FROM range(60) t(i)"
    )
    model = train("b", "y", hidden=[4], lr=1.0, iterations=200, db=engine)
    assert model.classes == [False, True] and [p.kind for p in model.preprocessing] == ["boolean"] * 2
    assert json.loads(json.dumps(model.to_dict()))["classes"] == [False, True]
    _, rows = predict(model, "b", db=engine)
    assert {type(r[3]) for r in rows} == {bool}
    assert all(r[3] == r[2] for r in rows)  # xor learnt


# --- the model file ---------------------------------------------------------------------------------------


def test_model_file_roundtrip_and_backward_compatibility(engine, tmp_path):
    data = nully_data()
    make_table(engine, "n", data)
    model = train("n", "y", iterations=2, impute="median", standardize=True, max_categories=2, db=engine)
    path = str(tmp_path / "m.json")
    model.save(path)
    again = Model.load(path)
    assert again.preprocessing == model.preprocessing and again.features == model.features
    assert predict(again, "n", db=engine) == predict(model, "n", db=engine)

    # a file without "preprocessing" (every earlier model) casts its features to DOUBLE
    old = model.to_dict()
    old.pop("preprocessing")
    old["features"] = ["a", "b"]
    old["layers"][0]["W"] = old["layers"][0]["W"][:2]
    legacy = Model.from_dict(old)
    assert legacy.preprocessing is None and [p.kind for p in legacy.encoding] == ["numeric", "numeric"]

    bad = model.to_dict()
    bad["preprocessing"][4]["categories"] = []
    with pytest.raises(ModelFileError, match="no categories"):
        Model.from_dict(bad)
    bad = model.to_dict()
    bad["preprocessing"] = bad["preprocessing"][::-1]
    with pytest.raises(ModelFileError, match="name the features"):
        Model.from_dict(bad)
    bad = model.to_dict()
    bad["preprocessing"][4]["categories"].append("extra")
    with pytest.raises(ModelFileError, match="makes 9 inputs but the first layer takes 8"):
        Model.from_dict(bad)
    bad = model.to_dict()
    bad["preprocessing"][0]["std"] = 0
    with pytest.raises(ModelFileError, match="bad mean/std"):
        Model.from_dict(bad)


def test_column_prep_sql_is_quoted():
    p = ColumnPrep('we"ird; col', "categorical", categories=("o'k",), other=True, fill="o'k")
    sql = [e.sql("postgres") for e in p.inputs()]
    want = (
        """CAST(CASE WHEN COALESCE("we""ird; col", 'o''k') = 'o''k' THEN 1 ELSE 0 END AS DOUBLE PRECISION)"""
    )
    assert sql[0] == want
    assert "NOT IN" not in sql[1] and " IN ('o''k')" in sql[1]


def test_init_with_standardize_keeps_the_function(engine):
    data = mixed_data(60)
    make_table(engine, "pts", data)
    base = train("pts", "label", hidden=[3], iterations=5, db=engine)
    assert base.preprocessing is not None and base.preprocessing[0].mean is None
    same = train("pts", "label", init=base, iterations=0, standardize=True, db=engine)
    assert same.preprocessing[0].mean is not None
    _, a = predict(base, "pts", db=engine)
    _, b = predict(same, "pts", db=engine)
    np.testing.assert_allclose(np.array([r[-3:] for r in a]), np.array([r[-3:] for r in b]), rtol=1e-9)
    assert same.preprocessing[2].categories == base.preprocessing[2].categories  # the encoding is reused


# --- the command line -------------------------------------------------------------------------------------


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(result, code, *needles):
    got, _, err = result
    lines = err.strip().splitlines()
    assert got == code and len(lines) == 1 and lines[0].startswith("sqlgrad: error: "), err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture
def user_db(tmp_path):
    """A DuckDB file with the issue's table: a yes/no label, a text column and a numeric column with NULLs."""
    path = tmp_path / "user.db"
    rng = np.random.default_rng(5)
    n = 200
    amount = rng.normal(50, 20, size=n)
    plan = rng.choice(["basic", "plus", "pro"], size=n)
    churn = (amount - 50) / 20 + 1.5 * (plan == "basic") - 0.5 > 0
    amount_null = [None if i % 9 == 0 else float(a) for i, a in enumerate(amount)]
    con = duckdb.connect(str(path))
    con.execute(
        'CREATE TABLE "Customers" ("id" BIGINT, "plan" VARCHAR, "monthly amount" DOUBLE, "churned" VARCHAR)'
    )
    con.executemany(
        'INSERT INTO "Customers" VALUES (?, ?, ?, ?)',
        [
            (i, str(p), a, "yes" if c else "no")
            for i, (p, a, c) in enumerate(zip(plan.tolist(), amount_null, churn.tolist(), strict=True))
        ],
    )
    con.close()
    data = {
        "id": list(range(n)),
        "plan": plan.tolist(),
        "monthly amount": amount_null,
        "churned": ["yes" if c else "no" for c in churn],
    }
    return f"duckdb:///{path}", str(path), data


def snapshot(path: str) -> tuple[list, list]:
    con = duckdb.connect(path)
    try:
        tables = sorted(r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall())
        rows = con.execute('SELECT * FROM "Customers" ORDER BY "id"').fetchall()
    finally:
        con.close()
    return tables, rows


def test_done_when_text_label_text_column_and_nulls_through_the_cli(user_db, tmp_path, capsys):
    url, path, data = user_db
    before = snapshot(path)
    m = str(tmp_path / "m.json")
    code, _, err = run(
        ["train", "Customers", "--db", url, "--target", "churned", "--exclude", "id", "--impute", "mean",
         "--hidden", "8", "--lr", "0.5", "--iterations", "150", "-o", m, "--quiet"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    model = Model.load(m)
    assert model.classes == ["no", "yes"] and model.features == ["plan", "monthly amount"]
    with open(m) as fh:
        section = json.load(fh)["preprocessing"]
    assert section[0]["kind"] == "categorical" and section[0]["fill"] in ("basic", "plus", "pro")
    assert section[1]["fill"] == pytest.approx(np.mean([a for a in data["monthly amount"] if a is not None]))
    assert section[1]["std"] > 1  # standardised by default, folded into the weights

    out_csv = str(tmp_path / "scored.csv")
    code, _, err = run(["predict", m, "Customers", "--db", url, "-o", out_csv], capsys)
    assert code == 0, err
    with open(out_csv) as fh:
        rows = list(csv.DictReader(fh))
    X = P.inputs(data, model.preprocessing)
    probs = R.predict_scores(model.weights, model.activations, model.head, X)
    got = np.array([[float(r["probability_no"]), float(r["probability_yes"])] for r in rows])
    np.testing.assert_allclose(got, probs, rtol=1e-9)
    predicted = [r["predicted_churned"] for r in rows]
    assert predicted == [model.classes[k] for k in np.argmax(probs, axis=1)]
    assert set(predicted) == {"yes", "no"}
    assert np.mean(np.array(predicted) == np.array(data["churned"])) > 0.85

    code, out, err = run(["evaluate", m, "Customers", "--db", url, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["n"] == 200

    # the printed scoring query runs on raw rows and gives the same predictions
    code, out, err = run(["sql", m, "--table", "Customers"], capsys)
    assert code == 0, err
    con = duckdb.connect(path, read_only=True)
    try:
        printed = con.execute(out).fetchall()
    finally:
        con.close()
    np.testing.assert_allclose(np.array([r[-2:] for r in printed], dtype=float), probs, rtol=1e-9)
    assert snapshot(path) == before  # the user's table is unchanged and nothing is left behind

    # a view scoring raw rows
    code, _, err = run(["predict", m, "Customers", "--db", url, "--view", "scored"], capsys)
    assert code == 0, err
    con = duckdb.connect(path)
    try:
        assert [r[-3] for r in con.execute('SELECT * FROM "scored"').fetchall()] == predicted
        con.execute('DROP VIEW "scored"')
    finally:
        con.close()


def test_cli_errors_are_one_line_and_change_nothing(user_db, tmp_path, capsys):
    url, path, _ = user_db
    before = snapshot(path)
    m = str(tmp_path / "m.json")
    base = ["train", "Customers", "--db", url, "--target", "churned", "-o", m]
    one_line_error(run(base, capsys), 2, "'monthly amount' has 23 NULL values")
    one_line_error(run([*base, "--impute", "mean", "--exclude", "nope"], capsys), 2, "'nope'")
    one_line_error(run([*base, "--impute", "mean", "--max-categories", "0"], capsys), 2, "max categories")
    one_line_error(
        run([*base, "--impute", "mean", "--features", "plan", "--exclude", "id"], capsys), 2, "not both"
    )
    assert not os.path.exists(m)
    assert snapshot(path) == before

    assert run([*base, "--impute", "median", "--iterations", "2", "--quiet"], capsys)[0] == 0
    con = duckdb.connect(path)
    con.execute('CREATE TABLE "Other" AS SELECT "id", "id" AS "plan", "monthly amount" FROM "Customers"')
    con.execute('CREATE TABLE "Dated" AS SELECT *, DATE \'2024-01-01\' AS "signed up" FROM "Customers"')
    con.close()
    one_line_error(run(["predict", m, "Other", "--db", url], capsys), 2, "'plan'", "needs text")
    one_line_error(
        run(["train", "Dated", "--db", url, "--target", "churned", "--impute", "mean", "-o", m], capsys),
        2,
        "'signed up' is DATE",
        "--exclude",
    )
    with open(m) as fh:
        bad = json.load(fh)
    bad["preprocessing"][1]["kind"] = "fancy"
    bad_path = tmp_path / "bad.json"
    bad_path.write_text(json.dumps(bad))
    one_line_error(run(["predict", str(bad_path), "Customers", "--db", url], capsys), 2, "'fancy'")
    con = duckdb.connect(path)
    try:
        assert con.execute('SELECT * FROM "Customers" ORDER BY "id"').fetchall() == before[1]
        tables = sorted(r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall())
        assert tables == ["Customers", "Dated", "Other"]
    finally:
        con.close()


def test_cli_standardizes_by_default_except_with_init(tmp_path, capsys):
    rng = np.random.default_rng(1)
    path = tmp_path / "p.csv"
    X = rng.normal(size=(80, 2)) * [100, 0.01] + [500, 3]
    with open(path, "w") as fh:
        fh.write("a,b,y\n")
        for (a, b), y in zip(X.tolist(), (X[:, 0] > 500).tolist(), strict=True):
            fh.write(f"{a!r},{b!r},{int(y)}\n")
    m = str(tmp_path / "m.json")
    assert run(["train", str(path), "--target", "y", "--iterations", "3", "-o", m, "--quiet"], capsys)[0] == 0
    assert [p.mean is not None for p in Model.load(m).preprocessing] == [True, True]
    assert (
        run(
            [
                "train",
                str(path),
                "--target",
                "y",
                "--iterations",
                "3",
                "--no-standardize",
                "-o",
                m,
                "--quiet",
            ],
            capsys,
        )[0]
        == 0
    )
    assert Model.load(m).preprocessing is None
    init = str(tmp_path / "init.json")
    with open(init, "w") as fh:
        json.dump(
            {"layers": [{"W": [[0.1, -0.2], [0.3, 0.4]], "b": [0.0, 0.0], "activation": "softmax"}]}, fh
        )
    assert (
        run(
            [
                "train",
                str(path),
                "--target",
                "y",
                "--init",
                init,
                "--iterations",
                "3",
                "--lr",
                "1e-6",
                "-o",
                m,
                "--quiet",
            ],
            capsys,
        )[0]
        == 0
    )
    assert Model.load(m).preprocessing is None
    assert (
        run(
            [
                "train",
                str(path),
                "--target",
                "y",
                "--init",
                init,
                "--standardize",
                "--iterations",
                "0",
                "-o",
                m,
                "--quiet",
            ],
            capsys,
        )[0]
        == 0
    )
    model = Model.load(m)
    assert model.preprocessing[0].mean == pytest.approx(X[:, 0].mean(), rel=1e-12)
    # zero iterations from raw-space initial weights: the same network, whatever the standardisation
    assert_weights_close(model.weights, [(np.array([[0.1, -0.2], [0.3, 0.4]]), np.zeros(2))])


@pytest.mark.parametrize("dialect", ["postgres", "sqlite", "mysql", "bigquery"])
def test_sql_with_preprocessing_parses(user_db, tmp_path, capsys, dialect):
    url, _, _ = user_db
    m = str(tmp_path / "m.json")
    code, _, err = run(
        ["train", "Customers", "--db", url, "--target", "churned", "--exclude", "id",
         "--impute", "most-frequent", "--iterations", "2", "-o", m, "--quiet"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    for what in ([], ["--train", "--strategy", "stepwise"]):
        code, out, err = run(["sql", m, "--dialect", dialect, *what], capsys)
        assert code == 0, err
        assert [s for s in sqlglot.parse(out, read=dialect) if s is not None]
        assert "COALESCE" in out.upper()


def test_predict_output_is_csv_of_user_values(user_db, tmp_path, capsys):
    url, _, _ = user_db
    m = str(tmp_path / "m.json")
    args = [
        "train",
        "Customers",
        "--db",
        url,
        "--target",
        "churned",
        "--drop-nulls",
        "--iterations",
        "2",
        "-o",
        m,
    ]
    code, _, err = run([*args, "--json"], capsys)
    assert code == 0, err
    model = Model.load(m)
    assert "skipped 23 rows with NULL values (--drop-nulls)" in model.training["notes"]
    assert model.features == ["id", "plan", "monthly amount"] and model.training["rows"] == 177
    code, out, _ = run(["predict", m, "Customers", "--db", url], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 200 and {r["predicted_churned"] for r in rows} <= {"yes", "no", ""}
    assert sum(r["predicted_churned"] == "" for r in rows) == 23  # NULL in, NULL out: no fill in the model
