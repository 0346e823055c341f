"""Diabetes (442 patients, 10 baseline measurements, disease progression after one year): regression in SQL.

    python examples/diabetes/run.py [--quick] [--out DIR] [--seed 0]

The route a Python user takes:

1. scikit-learn's bundled copy of the data, unscaled (no download), is split 75/25, stratified by the
   quartile of the target, and written as the tables ``diabetes_train`` and ``diabetes_test`` of a DuckDB
   database file (scratch directory);
2. the target (25 to 346) is standardised in SQL by two views, ``diabetes_train_z`` and
   ``diabetes_test_z``, with the mean and standard deviation of the training rows: sqlgrad standardises
   features, not the target, and an identity head started near 0 would spend hundreds of steps reaching
   a mean of 150;
3. ``sqlgrad.train("diabetes_train_z", "progression_z", db=...)`` trains a 10-16-1 ReLU network (mean
   squared error) with full-batch Adam inside DuckDB, features standardised in SQL;
4. ``sqlgrad.evaluate`` computes R², RMSE and MAE on ``diabetes_test_z`` in SQL (R² is the same on
   either scale; RMSE and MAE are multiplied back by the target's standard deviation), and
   ``sqlgrad.predict`` scores the test rows in SQL;
5. scikit-learn's ``MLPRegressor`` trains the same architecture on the same split with the same settings
   (full-batch Adam, same learning rate and iterations, standardised inputs and target through
   ``TransformedTargetRegressor``, ``alpha = l2 * n_train / 2`` so that both minimise the same penalised
   loss: scikit-learn's squared error is half the mean squared error) as a reference.

The network and its settings (a strong L2 penalty; 200 iterations) were chosen by 5-fold cross-validation
of scikit-learn's MLPRegressor on the training rows: without the penalty it overfits these 331 rows
within 100 iterations. A linear regression is printed for scale.

Writes ``results.json`` and ``diabetes.png`` (loss curves of both, predicted against true progression on
the test set) to ``--out`` (default: this folder). ``--quick`` trains a smaller network for fewer
iterations (CI).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import _common as common  # noqa: E402

NAME = "diabetes"
TARGET = "progression"
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
# alpha and iterations: 5-fold cross-validation of scikit-learn's MLPRegressor on the training rows
FULL = {"hidden": [16], "lr": 0.01, "iterations": 200, "alpha": 10.0}
QUICK = {"hidden": [8], "lr": 0.05, "iterations": 30, "alpha": 10.0}

STANDARDISED_VIEW = """
CREATE VIEW {name}_z AS
SELECT d.* EXCLUDE ({target}), (d.{target} - s.mean) / s.std AS {target}_z
FROM {name} AS d,
     (SELECT AVG({target}) AS mean, STDDEV_POP({target}) AS std FROM diabetes_train) AS s
"""


def main() -> None:
    args = common.parse_args(__doc__, HERE)
    cfg = QUICK if args.quick else FULL

    import duckdb
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import sqlgrad

    X, y = load_diabetes(return_X_y=True, scaled=False)
    quartile = np.digitize(y, np.quantile(y, [0.25, 0.5, 0.75]))
    X_train, X_test, y_train, y_test = common.split(X, y, args.seed, stratify=quartile)
    n_train = len(y_train)
    # sqlgrad: MSE + 0.5*l2*sum(W^2); scikit-learn: (MSE + alpha*sum(W^2)/n) / 2
    l2 = 2 * cfg["alpha"] / n_train
    arch = common.architecture(X.shape[1], cfg["hidden"], 1)

    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, f"{NAME}.duckdb")
        with duckdb.connect(path) as con:
            for part, X_part, y_part in (("train", X_train, y_train), ("test", X_test, y_test)):
                target = np.asarray(y_part, dtype=np.float64)
                common.write_table(con, f"{NAME}_{part}", FEATURES, X_part, TARGET, target)
            for name in (f"{NAME}_train", f"{NAME}_test"):
                con.execute(STANDARDISED_VIEW.format(name=name, target=TARGET))
            mean, std = con.execute(
                f"SELECT AVG({TARGET}), STDDEV_POP({TARGET}) FROM {NAME}_train"
            ).fetchone()
        db = f"duckdb:///{path}"

        t0 = time.perf_counter()
        model = sqlgrad.train(
            f"{NAME}_train_z",
            f"{TARGET}_z",
            db=db,
            task="regression",
            hidden=cfg["hidden"],
            activation="relu",
            optimizer="adam",
            lr=cfg["lr"],
            l2=l2,
            iterations=cfg["iterations"],
            standardize=True,
            seed=args.seed,
        )
        sg_wall = time.perf_counter() - t0
        metrics = sqlgrad.evaluate(model, f"{NAME}_test_z", db=db)
        names, rows = sqlgrad.predict(model, f"{NAME}_test_z", db=db)
    at = names.index(model.output_columns()[0])
    sg_pred = np.array([r[at] for r in rows]) * std + mean  # rows come back in the table's order
    sg_true = np.array([r[names.index(f"{TARGET}_z")] for r in rows]) * std + mean

    # scikit-learn, same split, same architecture and settings
    mlp = common.mlp(cfg, args.seed, regression=True, batch=n_train, iterations=cfg["iterations"])
    reg = TransformedTargetRegressor(make_pipeline(StandardScaler(), mlp), transformer=StandardScaler())
    sk_seconds = common.fit(reg, X_train, y_train)
    sk_pred = reg.predict(X_test)
    fitted = reg.regressor_[-1]
    linear_r2 = float(LinearRegression().fit(X_train, y_train).score(X_test, y_test))

    test = {"r2": metrics["r2"], "rmse": metrics["rmse"] * std, "mae": metrics["mae"] * std}
    results = common.results(
        NAME,
        "regression",
        args,
        {
            "source": "sklearn.datasets.load_diabetes(scaled=False)",
            "train_rows": n_train,
            "test_rows": len(y_test),
            "features": X.shape[1],
            "target_mean": mean,
            "target_std": std,
            "split": "stratified by target quartile, 25% test",
        },
        arch,
        common.settings(cfg, l2, target="standardised in SQL by a view"),
        sqlgrad=common.sqlgrad_side("python api", test, model.training, sg_wall, "r2"),
        sklearn={
            "r2": float(r2_score(y_test, sk_pred)),
            "rmse": float(np.sqrt(mean_squared_error(y_test, sk_pred))),
            "mae": float(mean_absolute_error(y_test, sk_pred)),
            "train_r2": float(reg.score(X_train, y_train)),
            "final_loss": 2 * float(fitted.loss_),  # on sqlgrad's scale (MSE, not MSE / 2)
            "iterations": int(fitted.n_iter_),
            "seconds": round(sk_seconds, 3),
        },
        linear_regression_r2=linear_r2,
    )
    history, sk_curve = model.history, [2 * v for v in fitted.loss_curve_]
    curves = [
        common.curve("sqlgrad (in SQL)", [h["iteration"] for h in history], [h["loss"] for h in history]),
        common.curve("scikit-learn MLPRegressor (x2)", range(len(sk_curve)), sk_curve, "--"),
    ]
    span = [0, 360]
    plot = {
        "size": [14, 4.5],
        "loss": common.loss_panel(
            results,
            curves,
            "iteration (full-batch Adam step)",
            "training loss (MSE of z-scores + L2)",
            "linear",
        ),
        "panels": [
            common.scatter_panel(
                common.side_title(who, f"test R² {results[who]['r2']:.3f}"),
                true,
                pred,
                span,
                "true progression",
            )
            for who, true, pred in [("sqlgrad", sg_true, sg_pred), ("sklearn", y_test, sk_pred)]
        ],
    }
    common.finish(results, plot, args.out, extra=f"; linear regression R² {linear_r2:.4f}")


if __name__ == "__main__":
    main()
