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

import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import _common as common  # noqa: E402

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
    args = common.parse_args(__doc__, HERE)
    cfg = QUICK if args.quick else FULL

    import duckdb
    from sklearn.datasets import load_iris

    import sqlgrad as sg

    data = load_iris()
    X, y = data.data, data.target
    X_train, X_test, y_train, y_test = common.split(X, y, args.seed)
    classes = [str(c) for c in data.target_names]
    n_train = len(y_train)
    l2 = cfg["alpha"] / n_train  # sqlgrad's 0.5*l2*sum(W^2) equals scikit-learn's 0.5*alpha*sum(W^2)/n
    arch = common.architecture(X.shape[1], cfg["hidden"], len(classes))

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

    test = {"accuracy": metrics["accuracy"], "log_loss": metrics["log_loss"]}
    common.full_batch_classifier(
        NAME,
        args,
        cfg,
        l2,
        arch,
        "sklearn.datasets.load_iris",
        classes,
        (X_train, X_test, y_train, y_test),
        common.sqlgrad_side("command line", test, summary, sg_wall, "accuracy"),
        common.confusion(classes, *zip(*counts, strict=True)),  # true, predicted, count
        model.history,
    )


if __name__ == "__main__":
    main()
