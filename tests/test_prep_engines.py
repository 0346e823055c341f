"""Feature preparation on every engine: imputation values, standardisation, one-hot text columns and the
training that follows equal numpy's; predictions on raw rows (NULLs included) come out in the user's own
label values."""

from __future__ import annotations

import numpy as np
import pytest

import prep_reference as P
import reference as R
from conftest import assert_weights_close
from engines import opened, unique
from sqlgrad import evaluate, predict, train
from sqlgrad.errors import DataError
from sqlgrad.spec import build_spec, init_weights

ENGINES = ["duckdb", "sqlite", "postgres", "mysql"]


@pytest.fixture(params=ENGINES)
def eng(request):
    yield from opened(request.param)


def load(engine, data: dict[str, list], kinds: dict[str, str]) -> str:
    name = unique("sg prep 'x'")
    engine.create_table(name, [(c, kinds[c]) for c in data], list(zip(*data.values(), strict=True)))
    engine.created.append(name)
    return name


def customers(n: int = 90, seed: int = 3) -> tuple[dict[str, list], dict[str, str]]:
    rng = np.random.default_rng(seed)
    amount = rng.normal(40, 15, size=n)
    plan = rng.choice(["basic", "plus", "pro", "team"], size=n, p=[0.4, 0.3, 0.2, 0.1])
    member = rng.random(n) < 0.4
    churn = (amount - 40) / 15 + 1.2 * (plan == "basic") - 0.8 * member > 0.2
    data = {
        "plan": [None if i % 11 == 5 else str(p) for i, p in enumerate(plan)],
        "monthly amount": [None if i % 7 == 0 else float(a) for i, a in enumerate(amount)],
        "member": member.tolist(),
        "churned": ["yes" if c else "no" for c in churn],
    }
    return data, {"plan": "text", "monthly amount": "float", "member": "boolean", "churned": "text"}


def test_done_when_case_equals_numpy(eng):
    """Text label, text column and numeric column with NULLs, imputed (mean) and standardised."""
    data, kinds = customers()
    name = load(eng, data, kinds)
    model = train(
        name, "churned", hidden=[3], activation="tanh", lr=0.5, l2=1e-3, iterations=5, seed=9,
        impute="mean", standardize=True, max_categories=3, db=eng,
    )  # fmt: skip
    assert model.classes == ["no", "yes"]
    plan, amount, member = model.preprocessing
    assert plan.categories == ("basic", "plus", "pro") and plan.other and plan.fill == "basic"
    present = [a for a in data["monthly amount"] if a is not None]
    assert amount.fill == pytest.approx(np.mean(present), rel=1e-13)
    filled = np.array([amount.fill if a is None else a for a in data["monthly amount"]])
    assert amount.mean == pytest.approx(filled.mean(), rel=1e-12)
    assert amount.std == pytest.approx(filled.std(), rel=1e-12)
    # booleans: 0/1 where the engine has a boolean type, a (standardised) 0/1 integer elsewhere
    assert member.kind in ("boolean", "numeric")

    X = P.inputs(data, model.preprocessing, standardized=True)
    spec = build_spec(X.shape[1], [3], "tanh", "softmax", 2, 1e-3)
    y = np.array([model.classes.index(v) for v in data["churned"]], dtype=float)
    want, losses = R.train_gd(init_weights(spec, 9), ["tanh"], "softmax", X, y, 0.5, 1e-3, 5)
    np.testing.assert_allclose([h["loss"] for h in model.history[:-1]], losses, rtol=1e-9)
    assert_weights_close(model.weights, P.fold(want, model.preprocessing))

    # raw rows in, the user's labels out; the rows' own columns give numpy's inputs
    cols, rows = predict(model, name, db=eng)
    got = {c: [r[k] for r in rows] for k, c in enumerate(cols)}
    got["member"] = [None if v is None else bool(v) for v in got["member"]]
    probs = R.predict_scores(want, ["tanh"], "softmax", P.inputs(got, model.preprocessing, standardized=True))
    np.testing.assert_allclose(np.array([r[-2:] for r in rows], dtype=float), probs, rtol=1e-9)
    assert got["predicted_churned"] == [model.classes[k] for k in np.argmax(probs, axis=1)]
    metrics = evaluate(model, name, db=eng)
    truth = [model.classes.index(v) for v in got["churned"]]
    assert metrics["log_loss"] == pytest.approx(
        -np.mean(np.log(probs[np.arange(len(rows)), truth])), rel=1e-9
    )


def test_median_and_most_frequent_fills(eng):
    """PERCENTILE_CONT where the engine has it, the ROW_NUMBER() fallback elsewhere: numpy's median."""
    data = {
        "a": [3.5, None, -1.0, 8.25, 2.0, None, 2.0, 11.0],  # 6 values: the middle two's mean
        "b": [None, 7.0, 1.0, 4.0, 4.0, 9.0, 5.0, 4.5],  # 7 values
        "w": ["k", "j", None, "j", "k", "m", "m", None],  # j, k, m twice: the first in value order
        "y": [0, 1, 0, 1, 0, 1, 0, 1],
    }
    name = load(eng, data, {"a": "float", "b": "float", "w": "text", "y": "integer"})
    model = train(name, "y", iterations=1, impute="median", db=eng)
    fills = {p.column: p.fill for p in model.preprocessing}
    assert fills["a"] == pytest.approx(P.fill_value(data["a"], "median"), rel=1e-13)
    assert fills["b"] == pytest.approx(P.fill_value(data["b"], "median"), rel=1e-13)
    assert fills["w"] == "j"
    model = train(name, "y", iterations=1, impute="most-frequent", db=eng)
    assert [p.fill for p in model.preprocessing] == [2.0, 4.0, "j"]


def test_boolean_and_integer_labels_come_back_as_stored(eng):
    rng = np.random.default_rng(4)
    x = rng.normal(size=60)
    data = {"x": x.tolist(), "flag": (x > 0).tolist(), "code": np.where(x > 0.3, 7, -2).tolist()}
    name = load(eng, data, {"x": "float", "flag": "boolean", "code": "integer"})
    stored = {type(v) for (v,) in eng.query(f"SELECT flag FROM {eng.render(_table(name))}")}
    model = train(name, "flag", features=["x"], hidden=[2], lr=1.0, iterations=30, db=eng)
    cols, rows = predict(model, name, db=eng)
    predicted = [r[cols.index("predicted_flag")] for r in rows]
    assert {type(v) for v in predicted} == stored  # bool where the engine has booleans, else 0/1
    assert model.classes in ([False, True], [0, 1])
    model = train(name, "code", features=["x"], task="classification", lr=1.0, iterations=30, db=eng)
    assert model.classes == [-2, 7]
    cols, rows = predict(model, name, db=eng)
    assert {r[cols.index("predicted_code")] for r in rows} <= {-2, 7}


def test_null_errors_and_dropped_rows(eng):
    data, kinds = customers(40)
    name = load(eng, data, kinds)
    with pytest.raises(DataError, match=r"'plan' has 4 NULL values"):
        train(name, "churned", iterations=1, db=eng)
    model = train(name, "churned", iterations=1, drop_nulls=True, db=eng)
    keep = sum(
        p is not None and a is not None for p, a in zip(data["plan"], data["monthly amount"], strict=True)
    )
    assert model.training["rows"] == keep
    assert f"skipped {40 - keep} rows with NULL values (--drop-nulls)" in model.training["notes"]


def _table(name: str):
    from sqlgrad.sqlexpr import table

    return table(name)
