"""Wine (178 wines, 13 chemical measurements, 3 cultivars) trained in SQL through sqlgrad's Python API.

    python examples/wine/run.py [--quick] [--out DIR] [--seed 0]

The route a Python user takes:

1. scikit-learn's bundled copy of the data (no download) is split 75/25, stratified by cultivar, and
   written as the tables ``wine_train`` and ``wine_test`` of a DuckDB database file (scratch directory);
2. ``sqlgrad.train("wine_train", "cultivar", db=...)`` trains a 13-16-3 ReLU network with full-batch Adam
   inside DuckDB, with each feature standardised in SQL (the measurements range from 0.1 to 1,680);
3. ``sqlgrad.evaluate`` computes the held-out accuracy and log loss on ``wine_test`` in SQL, and
   ``sqlgrad.predict`` scores the test rows in SQL (confusion matrix);
4. scikit-learn's ``MLPClassifier`` trains the same architecture on the same split with the same
   settings (full-batch Adam, same learning rate and iterations, ``alpha = l2 * n_train`` so that both
   minimise the same penalised loss, standardised inputs) as a reference.

Writes ``results.json`` and ``wine.png`` (loss curves of both, confusion matrix of both on the test set)
to ``--out`` (default: this folder). ``--quick`` trains a smaller network for fewer iterations (CI).
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
NAME = "wine"
TARGET = "cultivar"
# common settings (Adam at 0.01, scikit-learn's default alpha), not tuned on the test set
FULL = {"hidden": [16], "lr": 0.01, "iterations": 300, "alpha": 1e-4}
QUICK = {"hidden": [8], "lr": 0.05, "iterations": 30, "alpha": 1e-4}


def write_table(con, name: str, columns: list[str], X: np.ndarray, labels: np.ndarray) -> None:
    """Create table ``name`` in DuckDB from the feature matrix and the labels (no pandas needed)."""
    values = {c: X[:, j] for j, c in enumerate(columns)}
    values[TARGET] = np.asarray(labels).astype(str)
    con.register("rows_in", values)
    con.execute(
        f'CREATE TABLE {name} AS SELECT * REPLACE (CAST("{TARGET}" AS VARCHAR) AS "{TARGET}") FROM rows_in'
    )
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
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    import sqlgrad

    data = load_wine()
    X, y = data.data, data.target
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=args.seed
    )
    classes = [str(c) for c in data.target_names]
    n_train = len(y_train)
    l2 = cfg["alpha"] / n_train  # sqlgrad's 0.5*l2*sum(W^2) equals scikit-learn's 0.5*alpha*sum(W^2)/n
    arch = "-".join(map(str, [X.shape[1], *cfg["hidden"], len(classes)]))

    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, f"{NAME}.duckdb")
        with duckdb.connect(path) as con:
            write_table(con, f"{NAME}_train", data.feature_names, X_train, data.target_names[y_train])
            write_table(con, f"{NAME}_test", data.feature_names, X_test, data.target_names[y_test])
        db = f"duckdb:///{path}"

        t0 = time.perf_counter()
        model = sqlgrad.train(
            f"{NAME}_train",
            TARGET,
            db=db,
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
        metrics = sqlgrad.evaluate(model, f"{NAME}_test", db=db)
        names, rows = sqlgrad.predict(model, f"{NAME}_test", db=db)
    true_at, pred_at = names.index(TARGET), names.index(model.output_columns()[0])
    sg_cm = np.zeros((len(classes), len(classes)), dtype=int)
    for row in rows:
        sg_cm[classes.index(row[true_at]), classes.index(row[pred_at])] += 1

    # scikit-learn, same split, same architecture and settings
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, confusion_matrix, log_loss
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    mlp = MLPClassifier(
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
    clf = make_pipeline(StandardScaler(), mlp)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    sk_seconds = time.perf_counter() - t0
    sk_pred = clf.predict(X_test)
    sk_cm = confusion_matrix(y_test, sk_pred, labels=range(len(classes)))

    info = model.training
    results = {
        "example": NAME,
        "task": "classification",
        "quick": args.quick,
        "seed": args.seed,
        "data": {
            "source": "sklearn.datasets.load_wine",
            "train_rows": n_train,
            "test_rows": len(y_test),
            "features": X.shape[1],
            "classes": classes,
            "split": "stratified, 25% test",
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
        },
        "sqlgrad": {
            "route": "python api",
            "accuracy": metrics["accuracy"],
            "log_loss": metrics["log_loss"],
            "train_accuracy": info["metrics"]["accuracy"],
            "final_loss": info["loss"],
            "iterations": info["iterations"],
            "seconds": info["seconds"],
            "wall_seconds": round(sg_wall, 3),
            "engine": info["engine"],
            "strategy": info["strategy"],
        },
        "sklearn": {
            "accuracy": float(accuracy_score(y_test, sk_pred)),
            "log_loss": float(log_loss(y_test, clf.predict_proba(X_test), labels=range(len(classes)))),
            "train_accuracy": float(clf.score(X_train, y_train)),
            "final_loss": float(mlp.loss_),
            "iterations": int(mlp.n_iter_),
            "seconds": round(sk_seconds, 3),
        },
        "confusion_matrix": {"labels": classes, "sqlgrad": sg_cm.tolist(), "sklearn": sk_cm.tolist()},
        "figure": f"{NAME}.png",
    }
    with open(os.path.join(args.out, "results.json"), "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1)
        fh.write("\n")
    plot(results, model.history, mlp.loss_curve_, os.path.join(args.out, f"{NAME}.png"))
    s, k = results["sqlgrad"], results["sklearn"]
    print(
        f"{NAME} {arch}: sqlgrad accuracy {s['accuracy']:.4f} in {s['wall_seconds']:.1f} s "
        f"({s['iterations']} iterations, {s['strategy']}); scikit-learn accuracy {k['accuracy']:.4f} "
        f"in {k['seconds']:.2f} s ({k['iterations']} iterations); wrote {args.out}/results.json, "
        f"{NAME}.png"
    )


def plot(results: dict, history: list[dict], sk_curve: list[float], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = results["data"]["classes"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.5), width_ratios=[1.4, 1, 1])
    ax = axes[0]
    ax.plot([h["iteration"] for h in history], [h["loss"] for h in history], label="sqlgrad (in SQL)")
    ax.plot(range(len(sk_curve)), sk_curve, "--", label="scikit-learn MLPClassifier")
    ax.set(xlabel="iteration (full-batch Adam step)", ylabel="training loss (log loss + L2)", yscale="log")
    ax.set_title(f"{results['example']} {results['architecture']}: training loss")
    ax.legend()
    for ax, who in zip(axes[1:], ["sqlgrad", "sklearn"], strict=True):
        cm = np.array(results["confusion_matrix"][who])
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=30)
        ax.set_yticks(range(len(labels)), labels)
        ax.set(xlabel="predicted", ylabel="true")
        name = "sqlgrad" if who == "sqlgrad" else "scikit-learn"
        ax.set_title(f"{name}: test accuracy {results[who]['accuracy']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    main()
