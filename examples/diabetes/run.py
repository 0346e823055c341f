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

import argparse
import json
import os
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
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


def write_table(con, name: str, X: np.ndarray, y: np.ndarray) -> None:
    """Create table ``name`` in DuckDB from the feature matrix and the target (no pandas needed)."""
    values = {c: X[:, j] for j, c in enumerate(FEATURES)}
    values[TARGET] = np.asarray(y, dtype=np.float64)
    con.register("rows_in", values)
    con.execute(f"CREATE TABLE {name} AS SELECT * FROM rows_in")
    con.unregister("rows_in")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small network, few iterations (CI)")
    parser.add_argument("--out", default=HERE, help="where results.json and the figure go")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of both initialisations")
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    os.makedirs(args.out, exist_ok=True)

    import duckdb
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import train_test_split

    import sqlgrad

    X, y = load_diabetes(return_X_y=True, scaled=False)
    quartile = np.digitize(y, np.quantile(y, [0.25, 0.5, 0.75]))
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=quartile, random_state=args.seed
    )
    n_train = len(y_train)
    # sqlgrad: MSE + 0.5*l2*sum(W^2); scikit-learn: (MSE + alpha*sum(W^2)/n) / 2
    l2 = 2 * cfg["alpha"] / n_train
    arch = "-".join(map(str, [X.shape[1], *cfg["hidden"], 1]))

    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, f"{NAME}.duckdb")
        with duckdb.connect(path) as con:
            write_table(con, f"{NAME}_train", X_train, y_train)
            write_table(con, f"{NAME}_test", X_test, y_test)
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
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mlp = MLPRegressor(
        hidden_layer_sizes=tuple(cfg["hidden"]),
        activation="relu",
        solver="adam",
        learning_rate_init=cfg["lr"],
        alpha=cfg["alpha"],
        batch_size=n_train,  # full batch, like sqlgrad
        max_iter=cfg["iterations"],
        n_iter_no_change=cfg["iterations"] + 1,  # no early stop: run every iteration
        shuffle=False,
        random_state=args.seed,
    )
    reg = TransformedTargetRegressor(make_pipeline(StandardScaler(), mlp), transformer=StandardScaler())
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(X_train, y_train)
    sk_seconds = time.perf_counter() - t0
    sk_pred = reg.predict(X_test)
    fitted = reg.regressor_[-1]
    linear_r2 = float(LinearRegression().fit(X_train, y_train).score(X_test, y_test))

    info = model.training
    results = {
        "example": NAME,
        "task": "regression",
        "quick": args.quick,
        "seed": args.seed,
        "data": {
            "source": "sklearn.datasets.load_diabetes(scaled=False)",
            "train_rows": n_train,
            "test_rows": len(y_test),
            "features": X.shape[1],
            "target_mean": mean,
            "target_std": std,
            "split": "stratified by target quartile, 25% test",
        },
        "architecture": arch,
        "settings": {
            "activation": "relu",
            "optimizer": "adam",
            "lr": cfg["lr"],
            "iterations": cfg["iterations"],
            "batch": "full",
            "l2": l2,
            "alpha": cfg["alpha"],
            "standardize": True,
            "target": "standardised in SQL by a view",
        },
        "sqlgrad": {
            "route": "python api",
            "r2": metrics["r2"],
            "rmse": metrics["rmse"] * std,
            "mae": metrics["mae"] * std,
            "train_r2": info["metrics"]["r2"],
            "final_loss": info["loss"],
            "iterations": info["iterations"],
            "seconds": info["seconds"],
            "wall_seconds": round(sg_wall, 3),
            "engine": info["engine"],
            "strategy": info["strategy"],
        },
        "sklearn": {
            "r2": float(r2_score(y_test, sk_pred)),
            "rmse": float(np.sqrt(mean_squared_error(y_test, sk_pred))),
            "mae": float(mean_absolute_error(y_test, sk_pred)),
            "train_r2": float(reg.score(X_train, y_train)),
            "final_loss": 2 * float(fitted.loss_),  # on sqlgrad's scale (MSE, not MSE / 2)
            "iterations": int(fitted.n_iter_),
            "seconds": round(sk_seconds, 3),
        },
        "linear_regression_r2": linear_r2,
        "figure": f"{NAME}.png",
    }
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1)
        fh.write("\n")
    plot(
        results,
        model.history,
        [2 * v for v in fitted.loss_curve_],
        (sg_true, sg_pred),
        (y_test, sk_pred),
        os.path.join(args.out, f"{NAME}.png"),
    )
    s, k = results["sqlgrad"], results["sklearn"]
    print(
        f"{NAME} {arch}: sqlgrad R² {s['r2']:.4f} in {s['wall_seconds']:.1f} s "
        f"({s['iterations']} iterations, {s['strategy']}); scikit-learn R² {k['r2']:.4f} "
        f"in {k['seconds']:.2f} s ({k['iterations']} iterations); linear regression R² {linear_r2:.4f}; "
        f"wrote {args.out}/results.json, {NAME}.png"
    )


def plot(results: dict, history: list[dict], sk_curve: list[float], sg, sk, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5), width_ratios=[1.4, 1, 1])
    ax = axes[0]
    ax.plot([h["iteration"] for h in history], [h["loss"] for h in history], label="sqlgrad (in SQL)")
    ax.plot(range(len(sk_curve)), sk_curve, "--", label="scikit-learn MLPRegressor (x2)")
    ax.set(xlabel="iteration (full-batch Adam step)", ylabel="training loss (MSE of z-scores + L2)")
    ax.set_title(f"{results['example']} {results['architecture']}: training loss")
    ax.legend()
    lo, hi = 0, 360
    for ax, who, (true, pred) in zip(axes[1:], ["sqlgrad", "sklearn"], [sg, sk], strict=True):
        ax.scatter(true, pred, s=12, alpha=0.7)
        ax.plot([lo, hi], [lo, hi], color="grey", lw=1)
        ax.set(xlim=(lo, hi), ylim=(lo, hi), xlabel="true progression", ylabel="predicted")
        ax.set_aspect("equal")
        name = "sqlgrad" if who == "sqlgrad" else "scikit-learn"
        ax.set_title(f"{name}: test R² {results[who]['r2']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    main()
