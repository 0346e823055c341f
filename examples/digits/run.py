"""Digits (1,797 handwritten digits, 8x8 pixels, 10 classes) trained in SQL through sqlgrad's Python API.

    python examples/digits/run.py [--quick] [--out DIR] [--seed 0]

The route a Python user takes:

1. scikit-learn's bundled copy of the UCI digits (no download) is split 75/25, stratified by digit, and
   written as the tables ``digits_train`` and ``digits_test`` of a DuckDB database file (scratch
   directory): 64 pixel columns (0 to 16) and the digit, an integer;
2. ``sqlgrad.train("digits_train", "digit", db=...)`` trains a 64-32-10 ReLU network with a softmax head
   and Adam in mini-batches of 64 rows inside DuckDB (batches drawn in SQL from the seed, reshuffled
   each epoch), pixels standardised in SQL (the always-blank pixels get a note and no weight); an
   integer target with at most 20 values is a classification, and the model keeps the digits as its
   class labels;
3. ``sqlgrad.evaluate`` computes the held-out accuracy and log loss on ``digits_test`` in SQL, and
   ``sqlgrad.predict`` scores the test rows in SQL (confusion matrix);
4. scikit-learn's ``MLPClassifier`` trains the same architecture on the same split with the same
   settings (Adam, mini-batches of 64 shuffled each epoch, same learning rate and number of epochs,
   ``alpha = l2 * batch`` so that both minimise the same penalised loss, standardised inputs) as a
   reference.

Writes ``results.json`` and ``digits.png`` (loss curves of both, confusion matrix of both on the test
set) to ``--out`` (default: this folder). ``--quick`` (CI) averages the pixels by 2x2 blocks (4x4 images, 16
inputs) and trains a 16-8-10 network for 4 epochs.
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
NAME = "digits"
TARGET = "digit"
# lr and iterations: 5-fold cross-validation of scikit-learn's MLPClassifier on the training rows
FULL = {"hidden": [32], "lr": 0.01, "epochs": 30, "batch": 64, "alpha": 1e-4}
QUICK = {"hidden": [8], "lr": 0.05, "epochs": 4, "batch": 64, "alpha": 1e-4}


def write_table(con, name: str, columns: list[str], X: np.ndarray, labels: np.ndarray) -> None:
    """Create table ``name`` in DuckDB from the pixel matrix and the digits (no pandas needed)."""
    values = {c: X[:, j] for j, c in enumerate(columns)}
    values[TARGET] = np.asarray(labels, dtype=np.int64)
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
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    import sqlgrad

    data = load_digits()
    X, y, pixels = data.data, data.target, data.feature_names
    if args.quick:  # 2x2 blocks averaged: 16 inputs instead of 64, a much smaller SQL statement
        X = X.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16)
        pixels = [f"block_{i}_{j}" for i in range(4) for j in range(4)]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=args.seed
    )
    classes = [int(c) for c in data.target_names]
    n_train = len(y_train)
    # scikit-learn adds 0.5*alpha*sum(W^2)/batch_rows to each batch's loss; sqlgrad 0.5*l2*sum(W^2)
    l2 = cfg["alpha"] / cfg["batch"]
    arch = "-".join(map(str, [X.shape[1], *cfg["hidden"], len(classes)]))

    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, f"{NAME}.duckdb")
        with duckdb.connect(path) as con:
            write_table(con, f"{NAME}_train", pixels, X_train, y_train)
            write_table(con, f"{NAME}_test", pixels, X_test, y_test)
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
            batch_size=cfg["batch"],
            epochs=cfg["epochs"],
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
        batch_size=cfg["batch"],  # mini-batches, like sqlgrad
        max_iter=cfg["epochs"],
        n_iter_no_change=cfg["epochs"] + 1,  # no early stop: run every epoch
        shuffle=True,
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
            "source": "sklearn.datasets.load_digits",
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
            "iterations": cfg["epochs"],
            "epochs": cfg["epochs"],
            "batch": cfg["batch"],
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
            "iterations": round(info["epochs"]),
            "updates": info["iterations"],
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
        f"({s['iterations']} epochs, {s['strategy']}); scikit-learn accuracy {k['accuracy']:.4f} "
        f"in {k['seconds']:.2f} s ({k['iterations']} epochs); wrote {args.out}/results.json, "
        f"{NAME}.png"
    )


def plot(results: dict, history: list[dict], sk_curve: list[float], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = results["data"]["classes"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5), width_ratios=[1.4, 1, 1])
    ax = axes[0]
    epochs: dict[int, list[float]] = {}
    for h in history:  # the mean batch loss of each epoch, as scikit-learn's loss_curve_
        if "epoch" in h:
            epochs.setdefault(h["epoch"], []).append(h["loss"])
    ax.plot(list(epochs), [sum(v) / len(v) for v in epochs.values()], label="sqlgrad (in SQL)")
    ax.plot(range(1, len(sk_curve) + 1), sk_curve, "--", label="scikit-learn MLPClassifier")
    ax.set(
        xlabel="epoch (mini-batches of 64, Adam)", ylabel="mean training loss (log loss + L2)", yscale="log"
    )
    ax.set_title(f"{results['example']} {results['architecture']}: training loss")
    ax.legend()
    for ax, who in zip(axes[1:], ["sqlgrad", "sklearn"], strict=True):
        cm = np.array(results["confusion_matrix"][who])
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
        ax.set_xticks(range(len(labels)), labels)
        ax.set_yticks(range(len(labels)), labels)
        ax.set(xlabel="predicted", ylabel="true")
        name = "sqlgrad" if who == "sqlgrad" else "scikit-learn"
        ax.set_title(f"{name}: test accuracy {results[who]['accuracy']:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    main()
