"""Iris (150 flowers, 4 measurements, 3 species) trained in SQL through the ``sqlgrad`` command line.

    python examples/iris/run.py [--quick] [--out DIR] [--seed 0]

The route a user of the command line takes, each step printed as it runs:

1. scikit-learn's bundled copy of the data (no download) is split 75/25, stratified by species, and
   written as ``train.csv`` and ``test.csv`` (the species as text) in a scratch directory;
2. ``sqlgrad load`` puts both files into tables of a DuckDB database file;
3. ``sqlgrad train`` trains a 4-16-3 ReLU network with Adam on the ``iris_train`` table, in SQL
   (features standardised in SQL, the default of the command);
4. ``sqlgrad evaluate`` computes the held-out accuracy and log loss on ``iris_test`` in SQL, and
   ``sqlgrad predict --view`` creates a view that scores the test rows, from which one ``GROUP BY`` query
   gives the confusion matrix;
5. scikit-learn's ``MLPClassifier`` trains the same architecture on the same split with the same
   settings (full-batch Adam, same learning rate and iterations, ``alpha = l2 * n_train`` so that both
   minimise the same penalised loss, standardised inputs) as a reference.

Writes ``results.json`` and ``iris.png`` (loss curves of both, confusion matrix of both on the test set)
to ``--out`` (default: this folder). ``--quick`` trains a smaller network for fewer iterations (CI).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "iris"
TARGET = "species"
# common settings (Adam at 0.01, scikit-learn's default alpha), not tuned on the test set
FULL = {"hidden": [16], "lr": 0.01, "iterations": 300, "alpha": 1e-4}
QUICK = {"hidden": [8], "lr": 0.05, "iterations": 30, "alpha": 1e-4}


def sqlgrad(*args: str) -> str:
    """Run one ``sqlgrad`` command (with this Python's sqlgrad) and return its standard output."""
    print("$ sqlgrad " + shlex.join(args), flush=True)
    cmd = [sys.executable, "-m", "sqlgrad.cli", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"sqlgrad {args[0]} failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


def write_csv(path: str, header: list[str], X: np.ndarray, labels: np.ndarray) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row, label in zip(X.tolist(), labels.tolist(), strict=True):
            writer.writerow([*row, label])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small network, few iterations (CI)")
    parser.add_argument("--out", default=HERE, help="where results.json and the figure go")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of both initialisations")
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    os.makedirs(args.out, exist_ok=True)

    import duckdb
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    import sqlgrad as sg

    data = load_iris()
    X, y = data.data, data.target
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=args.seed
    )
    classes = [str(c) for c in data.target_names]
    n_train = len(y_train)
    l2 = cfg["alpha"] / n_train  # sqlgrad's 0.5*l2*sum(W^2) equals scikit-learn's 0.5*alpha*sum(W^2)/n
    arch = "-".join(map(str, [X.shape[1], *cfg["hidden"], len(classes)]))

    with tempfile.TemporaryDirectory() as work:
        header = [*data.feature_names, TARGET]
        write_csv(os.path.join(work, "train.csv"), header, X_train, data.target_names[y_train])
        write_csv(os.path.join(work, "test.csv"), header, X_test, data.target_names[y_test])
        db = f"duckdb:///{os.path.join(work, 'iris.duckdb')}"
        model_path = os.path.join(work, "model.json")
        sqlgrad("load", os.path.join(work, "train.csv"), "--db", db, "--table", "iris_train")
        sqlgrad("load", os.path.join(work, "test.csv"), "--db", db, "--table", "iris_test")

        # fmt: off
        train_args = [
            "train", "iris_train", "--db", db, "--target", TARGET,
            "--hidden", ",".join(map(str, cfg["hidden"])), "--activation", "relu",
            "--optimizer", "adam", "--lr", str(cfg["lr"]), "--l2", repr(l2),
            "--iterations", str(cfg["iterations"]), "--seed", str(args.seed),
            "-o", model_path, "--json",
        ]
        # fmt: on
        t0 = time.perf_counter()
        summary = json.loads(sqlgrad(*train_args))
        sg_wall = time.perf_counter() - t0
        metrics = json.loads(sqlgrad("evaluate", model_path, "iris_test", "--db", db, "--json"))
        print(sqlgrad("predict", model_path, "iris_test", "--db", db, "--view", "iris_scored").strip())
        model = sg.Model.load(model_path)
        predicted = model.output_columns()[0]
        with duckdb.connect(os.path.join(work, "iris.duckdb")) as con:
            counts = con.execute(
                f'SELECT {TARGET}, "{predicted}", COUNT(*) FROM iris_scored GROUP BY ALL'
            ).fetchall()
    sg_cm = np.zeros((len(classes), len(classes)), dtype=int)
    for true, pred, count in counts:
        sg_cm[classes.index(true), classes.index(pred)] = count

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

    results = {
        "example": NAME,
        "task": "classification",
        "quick": args.quick,
        "seed": args.seed,
        "data": {
            "source": "sklearn.datasets.load_iris",
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
            "route": "command line",
            "accuracy": metrics["accuracy"],
            "log_loss": metrics["log_loss"],
            "train_accuracy": summary["metrics"]["accuracy"],
            "final_loss": summary["loss"],
            "iterations": summary["iterations"],
            "seconds": summary["seconds"],
            "wall_seconds": round(sg_wall, 3),
            "engine": summary["engine"],
            "strategy": summary["strategy"],
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
