"""scikit-learn estimators that train and predict in SQL: :class:`SQLMLPClassifier`, :class:`SQLMLPRegressor`.

They follow scikit-learn's conventions (``fit``/``predict``/``predict_proba``/``score``, ``get_params`` and
``set_params``, fitted attributes with a trailing underscore), so they work in pipelines, grid searches
and cross-validation. ``fit`` validates ``X`` and ``y`` with scikit-learn's own checks, writes them into
a temporary table of a database (by default an in-memory DuckDB opened for the call and closed after
it), and trains there with :func:`sqlgrad.train`; ``predict`` scores a temporary table of ``X`` with the
model's SQL scoring query (:func:`sqlgrad.predict`). ``model_`` is the trained :class:`sqlgrad.Model`,
which can be saved and used by the command line or any other sqlgrad API.

Class labels may be of any type: they are encoded as ``0 .. C-1`` in the order of ``classes_`` (as
``numpy.unique`` sorts them) before they reach the database, and predictions are mapped back.

scikit-learn is an optional dependency (``pip install 'sqlgrad[sklearn]'``); ``import sqlgrad`` does not
import it.

>>> from sklearn.datasets import load_iris
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> from sqlgrad.sklearn import SQLMLPClassifier
>>> X, y = load_iris(return_X_y=True)
>>> clf = make_pipeline(
...     StandardScaler(), SQLMLPClassifier(hidden_layer_sizes=(8,), lr=0.5, max_iter=100, random_state=0)
... )
>>> clf.fit(X, y).score(X, y) > 0.9
True
>>> clf.predict(X[[0, 50, 100]])
array([0, 1, 2])
>>> clf.predict_proba(X[:2]).shape
(2, 3)
>>> mlp = clf[-1]
>>> mlp.n_iter_, len(mlp.loss_curve_), mlp.model_.spec.layer_sizes
(100, 101, (4, 8, 3))
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from numbers import Integral
from typing import Any

import numpy as np
from sqlglot import exp

from .engines import Engine, connect
from .errors import EngineError, MissingDriverError, SqlgradError
from .model import Model
from .sqlexpr import ident, num, table
from .train import predict as _sql_predict
from .train import train as _sql_train

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets, type_of_target
    from sklearn.utils.validation import check_is_fitted
except ImportError as _err:  # pragma: no cover - exercised in a subprocess by the tests

    class ScikitLearnMissingError(MissingDriverError, ImportError):
        """scikit-learn is not installed (a :class:`MissingDriverError` that is also an ImportError)."""

    raise ScikitLearnMissingError(
        f"sqlgrad.sklearn needs scikit-learn, which cannot be imported ({_err}): "
        "pip install 'sqlgrad[sklearn]'"
    ) from _err

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - scikit-learn 1.4 and 1.5

    def _validate_data(estimator: Any, /, *args: Any, **kwargs: Any) -> Any:
        return estimator._validate_data(*args, **kwargs)


__all__ = ["SQLMLPClassifier", "SQLMLPRegressor"]

TARGET = "y"
"""Name of the target column in the temporary training table."""

ROW_ID = "row_id"
"""Name of the row-number column of the temporary scoring table (predictions come back in X's order)."""

INSERT_BATCH = 1000
"""Rows per ``INSERT ... VALUES`` statement on engines other than DuckDB."""


def feature_column(j: int) -> str:
    """Internal name of the ``j``-th feature column (``f0``, ``f1``, ...)."""
    return f"f{j}"


def _value_error(err: SqlgradError) -> ValueError:
    return ValueError(str(err))


class _BaseSQLMLP(BaseEstimator):
    """What the classifier and the regressor share: data loading, training and SQL scoring."""

    # Set by the subclasses' __init__; declared here for type checkers.
    hidden_layer_sizes: int | Sequence[int]
    activation: str | Sequence[str]
    lr: float
    l2: float
    max_iter: int
    random_state: int | np.random.RandomState | None
    strategy: str
    db: str | Engine | None

    model_: Model
    n_features_in_: int
    loss_curve_: list[float]
    loss_: float
    n_iter_: int
    coefs_: list[np.ndarray]
    intercepts_: list[np.ndarray]

    # --- parameters -----------------------------------------------------------------------------------

    def _hidden(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, Integral) and not isinstance(sizes, bool):
            sizes = [sizes]
        try:
            values = list(sizes)  # type: ignore[arg-type]
        except TypeError:
            values = None
        if values is None or not all(isinstance(h, Integral) and not isinstance(h, bool) for h in values):
            raise ValueError(
                f"hidden_layer_sizes must be an int or a sequence of ints, got {self.hidden_layer_sizes!r}"
            )
        if any(h < 1 for h in values):
            raise ValueError(f"hidden layer sizes must be positive, got {self.hidden_layer_sizes!r}")
        return [int(h) for h in values]

    def _seed(self) -> int:
        rs = self.random_state
        if isinstance(rs, Integral) and not isinstance(rs, bool):
            if rs < 0:
                raise ValueError(f"random_state must be >= 0, got {rs}")
            return int(rs)
        # None (numpy's global generator) or a RandomState: draw a seed, like scikit-learn's estimators.
        return int(check_random_state(rs).randint(np.iinfo(np.int32).max))

    def _engine(self) -> tuple[Engine, bool]:
        """The engine to work in and whether this call owns it (and closes it)."""
        db = self.db
        if isinstance(db, Engine):
            return db, False
        if db is None or isinstance(db, str):
            try:
                return connect(db or None), True
            except SqlgradError as err:
                raise _value_error(err) from err
        raise ValueError(f"db must be None, a database URL or a sqlgrad Engine, got {type(db).__name__}")

    # --- fit and score --------------------------------------------------------------------------------

    def _fit_table(self, X: np.ndarray, y: np.ndarray, y_type: str, task: str, head: str | None) -> Model:
        """Load ``X`` and ``y`` into a temporary table, train on it, set the fitted attributes."""
        hidden = self._hidden()
        seed = self._seed()
        activation = self.activation
        if not isinstance(activation, str):
            activation = list(activation)
        engine, owned = self._engine()
        name = _temp_name("fit")
        columns = {feature_column(j): ("DOUBLE", X[:, j]) for j in range(X.shape[1])}
        columns[TARGET] = (y_type, y)
        try:
            load_table(engine, name, columns)
            model = _sql_train(
                name,
                TARGET,
                features=list(columns)[:-1],
                hidden=hidden,
                activation=activation,
                task=task,
                head=head,
                lr=self.lr,
                l2=self.l2,
                iterations=self.max_iter,
                seed=seed,
                strategy=self.strategy,
                db=engine,
            )
        except SqlgradError as err:
            raise _value_error(err) from err
        finally:
            _drop_quietly(engine, name)
            if owned:
                engine.close()
        self.model_ = model
        self.loss_curve_ = [float(h["loss"]) for h in model.history]
        self.loss_ = float(model.training["loss"])
        self.n_iter_ = int(model.training["iterations"])
        self.coefs_ = [w for w, _ in model.weights]
        self.intercepts_ = [b for _, b in model.weights]
        return model

    def _score_rows(self, X: Any) -> tuple[list[str], list[tuple]]:
        """The SQL scoring query's columns and rows for ``X``, in ``X``'s row order."""
        check_is_fitted(self, "model_")
        X = _validate_data(self, X, reset=False, dtype=np.float64)
        engine, owned = self._engine()
        name = _temp_name("predict")
        columns: dict[str, tuple[str, np.ndarray]] = {ROW_ID: ("BIGINT", np.arange(X.shape[0]))}
        columns.update({feature_column(j): ("DOUBLE", X[:, j]) for j in range(X.shape[1])})
        try:
            load_table(engine, name, columns)
            names, rows = _sql_predict(self.model_, name, db=engine)
        except SqlgradError as err:
            raise _value_error(err) from err
        finally:
            _drop_quietly(engine, name)
            if owned:
                engine.close()
        position = names.index(ROW_ID)
        rows = sorted(rows, key=lambda r: r[position])
        return names, rows


class SQLMLPClassifier(ClassifierMixin, _BaseSQLMLP):
    """Multi-layer perceptron classifier trained by full-batch gradient descent in SQL.

    Parameters:
        hidden_layer_sizes: widths of the hidden layers, e.g. ``(16, 8)``; an int is one layer; ``()``
            is a (multinomial) logistic regression.
        activation: hidden activation, ``relu``, ``leaky_relu``, ``tanh``, ``sigmoid`` or ``identity``,
            or one per hidden layer.
        head: ``softmax`` (cross-entropy over every class) or ``sigmoid`` (binary problems only).
        lr: learning rate.
        l2: L2 penalty ``0.5 * l2 * sum(W*W)`` on the weight matrices.
        max_iter: number of gradient steps (each one a pass over all rows).
        random_state: seed of the weight initialisation (an int is used as sqlgrad's ``seed``); None or a
            ``numpy.random.RandomState`` draws a seed.
        strategy: sqlgrad's training plan: ``auto``, ``recursive``, ``stepwise`` or ``nested``.
        db: where to train and score: None (an in-memory DuckDB opened for each call), a database URL,
            or an open :class:`sqlgrad.Engine` (the data goes into temporary tables of it, dropped
            after use). An engine cannot be deep-copied, so ``sklearn.base.clone`` needs a URL or None.

    Attributes:
        model_: the trained :class:`sqlgrad.Model` (features ``f0 .. f{n-1}``, target ``y``, classes
            ``0 .. C-1``, the positions in ``classes_``).
        classes_: the class labels, sorted.
        n_features_in_: number of features seen in ``fit``.
        feature_names_in_: the column names of ``X`` when it was a DataFrame with string column names.
        loss_curve_: training loss (mean log loss plus the L2 penalty) after 0, 1, ..., ``n_iter_`` steps.
        loss_: the final training loss.
        n_iter_: number of gradient steps done.
        coefs_, intercepts_: the weight matrices ``(fan_in, fan_out)`` and bias vectors, as in
            scikit-learn's ``MLPClassifier``.
    """

    classes_: np.ndarray

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (16,),
        *,
        activation: str | Sequence[str] = "relu",
        head: str = "softmax",
        lr: float = 0.1,
        l2: float = 0.0,
        max_iter: int = 200,
        random_state: int | np.random.RandomState | None = None,
        strategy: str = "auto",
        db: str | Engine | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.head = head
        self.lr = lr
        self.l2 = l2
        self.max_iter = max_iter
        self.random_state = random_state
        self.strategy = strategy
        self.db = db

    def fit(self, X: Any, y: Any) -> SQLMLPClassifier:
        """Train on ``X`` (n_samples, n_features) and the labels ``y``; returns ``self``."""
        X, y = _validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        classes, codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes; the data has only one class: "
                f"{classes.tolist()[0]!r}"
            )
        if self.head == "sigmoid" and len(classes) != 2:
            raise ValueError(
                "Only binary classification is supported with head='sigmoid'. The type of the target is "
                f"{type_of_target(y)} ({len(classes)} classes); use head='softmax'."
            )
        if self.head not in ("softmax", "sigmoid"):
            raise ValueError(f"head must be 'softmax' or 'sigmoid', got {self.head!r}")
        self._fit_table(X, codes.astype(np.int64), "BIGINT", "classification", self.head)
        self.classes_ = classes
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The predicted class of every row of ``X`` (computed in SQL), as values of ``classes_``."""
        names, rows = self._score_rows(X)
        position = names.index(self.model_.output_columns()[0])
        codes = np.array([r[position] for r in rows], dtype=np.int64)
        return self.classes_[codes]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        names, rows = self._score_rows(X)
        positions = [names.index(c) for c in self.model_.output_columns()[1:]]
        return np.array([[r[p] for p in positions] for r in rows], dtype=np.float64).reshape(
            len(rows), len(positions)
        )

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = self.head != "sigmoid"
        return tags

    def _more_tags(self) -> dict[str, Any]:  # scikit-learn < 1.6
        return {"binary_only": self.head == "sigmoid"}


class SQLMLPRegressor(RegressorMixin, _BaseSQLMLP):
    """Multi-layer perceptron regressor (mean squared error) trained by full-batch gradient descent in SQL.

    Parameters are those of :class:`SQLMLPClassifier` but ``head`` (regression uses the identity head).
    The loss is the mean of ``(prediction - y)**2`` (no factor 1/2) plus the L2 penalty; targets far from
    unit scale train better standardised (e.g. with ``sklearn.compose.TransformedTargetRegressor``).

    Attributes:
        model_: the trained :class:`sqlgrad.Model` (features ``f0 .. f{n-1}``, target ``y``).
        n_features_in_, feature_names_in_, loss_curve_, loss_, n_iter_, coefs_, intercepts_: as for
            :class:`SQLMLPClassifier`.
    """

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (16,),
        *,
        activation: str | Sequence[str] = "relu",
        lr: float = 0.01,
        l2: float = 0.0,
        max_iter: int = 200,
        random_state: int | np.random.RandomState | None = None,
        strategy: str = "auto",
        db: str | Engine | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.lr = lr
        self.l2 = l2
        self.max_iter = max_iter
        self.random_state = random_state
        self.strategy = strategy
        self.db = db

    def fit(self, X: Any, y: Any) -> SQLMLPRegressor:
        """Train on ``X`` (n_samples, n_features) and the numeric targets ``y``; returns ``self``."""
        X, y = _validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        self._fit_table(X, np.asarray(y, dtype=np.float64), "DOUBLE", "regression", None)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The predicted value of every row of ``X`` (computed in SQL)."""
        names, rows = self._score_rows(X)
        position = names.index(self.model_.output_columns()[0])
        return np.array([r[position] for r in rows], dtype=np.float64)


# --- temporary tables ----------------------------------------------------------------------------------


def _temp_name(purpose: str) -> str:
    return f"sqlgrad_sklearn_{uuid.uuid4().hex[:12]}_{purpose}"


def _drop_quietly(engine: Engine, name: str) -> None:
    with contextlib.suppress(Exception):
        engine.drop_work_table(name)  # the table is temporary: never drops a permanent one of that name


def load_table(engine: Engine, name: str, columns: dict[str, tuple[str, np.ndarray]]) -> None:
    """Create the temporary table ``name`` with ``{column: (SQL type, values)}`` and fill it.

    On DuckDB the columns are passed as list parameters and unnested in one ``INSERT``; on other
    engines the rows go in batches of ``INSERT ... VALUES`` with the numbers as literals (``repr`` of a
    double reads back as the same double).
    """
    schema = exp.Schema(
        this=table(name),
        expressions=[
            exp.ColumnDef(this=ident(c), kind=exp.DataType.build(t)) for c, (t, _) in columns.items()
        ],
    )
    engine.execute(
        exp.Create(
            this=schema,
            kind="TABLE",
            properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
        )
    )
    values = [np.asarray(v).tolist() for _, v in columns.values()]
    connection = _duckdb_connection(engine)
    if connection is not None:
        unnest = ", ".join(f"unnest(${i + 1})" for i in range(len(values)))
        sql = f"INSERT INTO {engine.render(table(name))} SELECT {unnest}"
        try:
            connection.execute(sql, values)
        except Exception as err:
            raise EngineError(f"DuckDB refused the rows of {name}: {err}") from err
        return
    rows = list(zip(*values, strict=True))
    for start in range(0, len(rows), INSERT_BATCH):
        literal_rows = [
            exp.Tuple(expressions=[num(v) for v in row]) for row in rows[start : start + INSERT_BATCH]
        ]
        engine.execute(exp.Insert(this=table(name), expression=exp.Values(expressions=literal_rows)))


def _duckdb_connection(engine: Engine) -> Any | None:
    """The DuckDB connection behind ``engine``, or None for other engines."""
    from .engines.duckdb import DuckDBEngine

    return engine.connection if isinstance(engine, DuckDBEngine) else None
