"""The scikit-learn estimators: scikit-learn's own estimator checks, equality with a numpy forward pass,
labels of any type, pipelines, the ``db`` parameter, and the optional dependency."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_diabetes, load_iris, make_blobs
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from sqlglot import exp

import sqlgrad
from sqlgrad.engines.base import Column, Engine
from sqlgrad.engines.duckdb import DuckDBEngine
from sqlgrad.errors import SqlgradError
from sqlgrad.sklearn import SQLMLPClassifier, SQLMLPRegressor, load_table

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")

# --- scikit-learn's estimator checks ---------------------------------------------------------------------
#
# Every check applies and passes; none is marked as an expected failure (the skips in the output are
# scikit-learn's own: array API checks without SCIPY_ARRAY_API=1, pandas checks without pandas). The
# instances are small (at most one hidden layer of 4 units) to keep the ~160 checks, each of which trains
# a few models in SQL, fast; random_state is fixed so that no run depends on a drawn seed. The regressor
# is checked with its default lr=0.01: some checks fit it on unscaled make_blobs features (values near
# +-10) or unscaled targets (standard deviation ~40), on which full-batch gradient descent with lr=0.1
# diverges (see test_regressor_divergence_is_a_value_error). The sigmoid-head classifier declares
# classifier_tags.multi_class = False, so the checks give it binary problems and verify its error on a
# multiclass target.

CHECKED = [
    SQLMLPClassifier(hidden_layer_sizes=(4,), max_iter=50, random_state=0),
    SQLMLPClassifier(hidden_layer_sizes=(), head="sigmoid", max_iter=50, random_state=0),
    SQLMLPRegressor(hidden_layer_sizes=(4,), max_iter=200, random_state=0),
]


@parametrize_with_checks(CHECKED)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# --- a numpy forward pass ------------------------------------------------------------------------------


def forward(model: sqlgrad.Model, X: np.ndarray) -> np.ndarray:
    """The logits of ``model`` for ``X``: ``h = act(h @ W + b)`` layer by layer, the head's input last."""
    acts = {
        "relu": lambda z: np.maximum(z, 0.0),
        "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
        "tanh": np.tanh,
        "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
        "identity": lambda z: z,
    }
    h = X
    for k, (w, b) in enumerate(model.weights):
        z = h @ w + b
        h = acts[model.activations[k]](z) if k < len(model.weights) - 1 else z
    return h


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def blobs(n: int = 400, centers: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_blobs(n_samples=n, centers=centers, n_features=3, cluster_std=2.0, random_state=seed)
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize(
    ("hidden", "activation"), [((5,), "relu"), ((4, 3), "tanh"), ((), "relu"), ((3,), ["sigmoid"])]
)
def test_classifier_equals_numpy_forward_pass(hidden, activation):
    X, y = blobs(500)
    clf = SQLMLPClassifier(hidden, activation=activation, lr=0.5, max_iter=30, random_state=1).fit(X, y)
    proba = clf.predict_proba(X)
    want = softmax(forward(clf.model_, X))
    np.testing.assert_allclose(proba, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[np.argmax(want, axis=1)])
    assert [w.shape for w in clf.coefs_] == [w.shape for w, _ in clf.model_.weights]


def test_sigmoid_head_equals_numpy_forward_pass():
    X, y = blobs(300, centers=2)
    labels = np.array(["no", "yes"])[y]
    clf = SQLMLPClassifier((4,), head="sigmoid", lr=0.5, max_iter=30, random_state=2).fit(X, labels)
    assert clf.model_.spec.n_outputs == 1
    p1 = 1.0 / (1.0 + np.exp(-forward(clf.model_, X)[:, 0]))
    np.testing.assert_allclose(clf.predict_proba(X), np.column_stack([1.0 - p1, p1]), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), np.where(p1 >= 0.5, "yes", "no"))


def test_regressor_equals_numpy_forward_pass():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 4))
    y = np.sin(X @ rng.normal(size=4)) + 0.1 * rng.normal(size=400)
    reg = SQLMLPRegressor((6,), activation="leaky_relu", max_iter=40, random_state=0).fit(X, y)
    np.testing.assert_allclose(reg.predict(X), forward(reg.model_, X)[:, 0], rtol=1e-9, atol=1e-12)
    assert reg.n_iter_ == 40 and len(reg.loss_curve_) == 41
    assert reg.loss_curve_[-1] < reg.loss_curve_[0]
    assert reg.loss_ == reg.loss_curve_[-1]


def test_random_state_is_sqlgrads_seed():
    """An int random_state trains exactly what ``sqlgrad.train(..., seed=random_state)`` trains."""
    X, y = blobs(200)
    clf = SQLMLPClassifier((4,), lr=0.3, l2=1e-3, max_iter=20, random_state=11).fit(X, y)
    with DuckDBEngine() as eng:
        columns = {name: ("DOUBLE", X[:, j]) for j, name in enumerate("abc")}
        load_table(eng, "t", {**columns, "label": ("BIGINT", y)})
        model = sqlgrad.train("t", "label", hidden=[4], lr=0.3, l2=1e-3, iterations=20, seed=11, db=eng)
    for (gw, gb), (ww, wb) in zip(clf.model_.weights, model.weights, strict=True):
        np.testing.assert_allclose(gw, ww, rtol=1e-12)
        np.testing.assert_allclose(gb, wb, rtol=1e-12, atol=1e-15)
    # None or a RandomState draw a seed; the same RandomState seed gives the same model
    a = SQLMLPClassifier((4,), max_iter=5, random_state=np.random.RandomState(0)).fit(X, y)
    b = SQLMLPClassifier((4,), max_iter=5, random_state=np.random.RandomState(0)).fit(X, y)
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])


# --- labels ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["setosa", "versicolor", "virginica"]),
        np.array(["b", "a", "c"], dtype=object),
        np.array([7, -1, 3]),
        np.array([3.0, 1.0, 2.0]),
    ],
)
def test_labels_of_any_type(labels):
    X, y = blobs(300)
    target = labels[y]
    clf = SQLMLPClassifier((4,), lr=0.5, max_iter=40, random_state=0).fit(X, target)
    np.testing.assert_array_equal(clf.classes_, np.unique(target))
    assert clf.model_.classes == [0, 1, 2]
    pred = clf.predict(X)
    assert pred.dtype == clf.classes_.dtype
    assert set(pred.tolist()) <= set(clf.classes_.tolist())
    assert clf.score(X, target) > 0.8
    proba = clf.predict_proba(X)
    np.testing.assert_array_equal(pred, clf.classes_[np.argmax(proba, axis=1)])


def test_boolean_labels_and_lists():
    X, y = blobs(200, centers=2)
    target = (y == 1).tolist()
    clf = SQLMLPClassifier((3,), lr=0.5, max_iter=30, random_state=0).fit(X.tolist(), target)
    np.testing.assert_array_equal(clf.classes_, [False, True])
    assert clf.predict(X[:5].tolist()).dtype == bool
    assert clf.score(X, target) > 0.8


def test_single_class_is_a_value_error():
    X, _ = blobs(20)
    with pytest.raises(ValueError, match="only one class: 'x'"):
        SQLMLPClassifier().fit(X, ["x"] * 20)


def test_sigmoid_head_refuses_multiclass():
    X, y = blobs(60)
    with pytest.raises(ValueError, match="Only binary classification is supported with head='sigmoid'"):
        SQLMLPClassifier(head="sigmoid").fit(X, y)
    with pytest.raises(ValueError, match="head must be 'softmax' or 'sigmoid'"):
        SQLMLPClassifier(head="identity").fit(X, y)


# --- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"activation": "swish"}, "unknown activation 'swish'"),
        ({"lr": 0.0}, "learning rate"),
        ({"l2": -1.0}, "l2 must be"),
        ({"strategy": "magic"}, "magic"),
        ({"max_iter": -1}, "iterations must be"),
    ],
)
def test_sqlgrad_errors_are_value_errors(params, match):
    X, y = blobs(30)
    with pytest.raises(ValueError, match=match) as info:
        SQLMLPClassifier((2,), **params).fit(X, y)
    assert isinstance(info.value.__cause__, SqlgradError)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"hidden_layer_sizes": (4, 0)}, "must be positive"),
        ({"hidden_layer_sizes": (2.5,)}, "sequence of ints"),
        ({"hidden_layer_sizes": "16"}, "sequence of ints"),
        ({"random_state": -3}, "random_state must be >= 0"),
        ({"db": 42}, "db must be None, a database URL or a sqlgrad Engine"),
        ({"db": "nosuchdb://x"}, "unsupported database URL"),
    ],
)
def test_parameter_errors_are_value_errors(params, match):
    X, y = blobs(30)
    with pytest.raises(ValueError, match=match):
        SQLMLPRegressor(**params).fit(X, y.astype(float))


def test_regressor_divergence_is_a_value_error():
    """Plain gradient descent with a large step diverges on unscaled features: a clear ValueError."""
    X, y = make_blobs(random_state=0, n_samples=21)
    with pytest.raises(ValueError, match="diverged"):
        SQLMLPRegressor(lr=0.1, random_state=0).fit(X, y)
    assert (
        SQLMLPRegressor(random_state=0)
        .fit(StandardScaler().fit_transform(X), y)
        .score(StandardScaler().fit_transform(X), y)
        > 0.5
    )


def test_nan_is_refused_by_sklearn_checks():
    X, y = blobs(30)
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        SQLMLPClassifier().fit(X, y)
    clf = SQLMLPClassifier((2,), max_iter=2).fit(np.nan_to_num(X), y)
    with pytest.raises(ValueError, match="Input X contains infinity"):
        clf.predict(np.where(np.isnan(X), np.inf, X))
    with pytest.raises(ValueError, match="X has 2 features, but SQLMLPClassifier is expecting 3"):
        clf.predict(np.nan_to_num(X)[:, :2])


# --- pipelines and bundled data sets ---------------------------------------------------------------------


def test_iris_pipeline():
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", SQLMLPClassifier(random_state=0))])
    pipe.fit(X_train, y_train)
    assert pipe.score(X_train, y_train) > 0.9
    assert pipe.score(X_test, y_test) > 0.9
    proba = pipe.predict_proba(X_test)
    assert proba.shape == (len(X_test), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    mlp = pipe.named_steps["mlp"]
    assert mlp.model_.spec.layer_sizes == (4, 16, 3)
    assert mlp.n_features_in_ == 4 and mlp.n_iter_ == 200
    # the fitted model is a sqlgrad.Model: scoring in SQL from sqlgrad's own API gives the same numbers
    Z = pipe.named_steps["scale"].transform(X_test)
    np.testing.assert_allclose(mlp.predict_proba(Z), softmax(forward(mlp.model_, Z)), rtol=1e-9, atol=1e-12)


def test_diabetes_regression():
    X, y = load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    net = SQLMLPRegressor((4,), lr=0.1, max_iter=100, random_state=0)
    model = TransformedTargetRegressor(
        regressor=make_pipeline(StandardScaler(), net),
        transformer=StandardScaler(),
    )
    model.fit(X_train, y_train)
    assert model.score(X_train, y_train) > 0.5
    # a linear least-squares fit scores 0.36 on this split
    assert model.score(X_test, y_test) > 0.25


def test_pickle_and_clone():
    X, y = blobs(100)
    clf = SQLMLPClassifier((3,), max_iter=10, random_state=0, db="duckdb://").fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params() and not hasattr(fresh, "model_")
    assert clf.set_params(max_iter=3).fit(X, y).n_iter_ == 3


# --- where the data goes ---------------------------------------------------------------------------------


def temp_tables(engine: Engine) -> list[str]:
    return [r[0] for r in engine.query("SELECT table_name FROM duckdb_tables() WHERE temporary")]


def test_db_engine_gets_temporary_tables_only():
    X, y = blobs(80)
    with DuckDBEngine() as eng:
        eng.execute("CREATE TABLE keep AS SELECT 1 AS x")
        clf = SQLMLPClassifier((3,), max_iter=5, random_state=0, db=eng).fit(X, y)
        clf.predict(X)
        # the estimator's own temporary tables are dropped (sqlgrad.train's may stay until the
        # connection closes: Engine.drop_table is broken with sqlgrad's pinned sqlglot)
        assert [t for t in temp_tables(eng) if t.startswith("sqlgrad_sklearn_")] == []
        assert [r[0] for r in eng.query("SELECT table_name FROM duckdb_tables() WHERE NOT temporary")] == [
            "keep"
        ]
        assert eng.query("SELECT 42") == [(42,)]  # still open: the estimator does not close a given engine
        same = SQLMLPClassifier((3,), max_iter=5, random_state=0).fit(X, y)
        np.testing.assert_array_equal(clf.predict_proba(X), same.predict_proba(X))


def test_db_url_of_a_file(tmp_path):
    X, y = blobs(80)
    url = f"duckdb:///{tmp_path / 'work.db'}"
    reg = SQLMLPRegressor((3,), max_iter=5, random_state=0, db=url).fit(X, y.astype(float))
    assert reg.predict(X).shape == (80,)
    with sqlgrad.connect(url) as eng:
        assert eng.query("SELECT count(*) FROM duckdb_tables()") == [(0,)]


class OtherEngine(Engine):
    """An engine that is not a DuckDBEngine (DuckDB underneath): rows go in as INSERT ... VALUES."""

    capabilities = DuckDBEngine.capabilities
    url = "duckdb://"

    def __init__(self) -> None:
        self.inner = DuckDBEngine()
        self.statements: list[str] = []

    def _execute(self, sql: str) -> Any:
        self.statements.append(sql)
        return self.inner._execute(sql)

    def _fetchall(self, result: Any) -> list[tuple]:
        return result.fetchall()

    def describe(self, relation: exp.Expression) -> list[Column]:
        return self.inner.describe(relation)

    def close(self) -> None:
        self.inner.close()


def test_other_engines_load_rows_as_literals():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(1200, 2)) * np.array([1e-7, 3e5])
    y = (X[:, 0] > 0).astype(int)
    eng = OtherEngine()
    try:
        load_table(
            eng, "t", {"id": ("BIGINT", np.arange(1200)), "a": ("DOUBLE", X[:, 0]), "b": ("DOUBLE", X[:, 1])}
        )
        inserts = [s for s in eng.statements if s.startswith("INSERT")]
        assert len(inserts) == 2  # batches of 1,000 rows
        got = np.array(eng.query("SELECT a, b FROM t ORDER BY id"))
        np.testing.assert_array_equal(got, X)  # every double read back exactly
        Z = X / X.std(axis=0)
        clf = SQLMLPClassifier((3,), max_iter=5, random_state=0, db=eng).fit(Z, y)
        ref = SQLMLPClassifier((3,), max_iter=5, random_state=0).fit(Z, y)
        np.testing.assert_allclose(clf.predict_proba(Z), ref.predict_proba(Z), rtol=1e-12)
    finally:
        eng.close()


# --- DataFrames (when pandas is installed) --------------------------------------------------------------


def test_dataframe_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = blobs(120)
    df = pd.DataFrame(X, columns=["alpha", "beta", "gamma"])
    clf = SQLMLPClassifier((3,), max_iter=20, random_state=0).fit(df, pd.Series(np.array(["p", "q", "r"])[y]))
    np.testing.assert_array_equal(clf.feature_names_in_, ["alpha", "beta", "gamma"])
    assert clf.model_.features == ["f0", "f1", "f2"]
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        np.testing.assert_array_equal(clf.predict(df), clf.predict(X))
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(df[["gamma", "beta", "alpha"]])
    assert not hasattr(SQLMLPClassifier((3,), max_iter=2).fit(X, y), "feature_names_in_")


# --- the optional dependency -----------------------------------------------------------------------------


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_import_sqlgrad_does_not_import_sklearn():
    result = run_python("import sys, sqlgrad; print('sklearn' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_without_sklearn_the_import_names_the_extra():
    code = (
        "import sys\n"
        "sys.modules['sklearn'] = None  # as if scikit-learn were not installed\n"
        "from sqlgrad.errors import MissingDriverError\n"
        "try:\n"
        "    import sqlgrad.sklearn\n"
        "except MissingDriverError as err:\n"
        "    assert isinstance(err, ImportError)\n"
        "    print(err)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "pip install 'sqlgrad[sklearn]'" in result.stdout
