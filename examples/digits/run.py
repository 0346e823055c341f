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

import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import _common as common  # noqa: E402

NAME = "digits"
TARGET = "digit"
# lr and iterations: 5-fold cross-validation of scikit-learn's MLPClassifier on the training rows
FULL = {"hidden": [32], "lr": 0.01, "epochs": 30, "batch": 64, "alpha": 1e-4}
QUICK = {"hidden": [8], "lr": 0.05, "epochs": 4, "batch": 64, "alpha": 1e-4}


def main() -> None:
    args = common.parse_args(__doc__, HERE)
    cfg = QUICK if args.quick else FULL

    import duckdb
    from sklearn.datasets import load_digits
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import sqlgrad

    data = load_digits()
    X, y, pixels = data.data, data.target, data.feature_names
    if args.quick:  # 2x2 blocks averaged: 16 inputs instead of 64, a much smaller SQL statement
        X = X.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, 16)
        pixels = [f"block_{i}_{j}" for i in range(4) for j in range(4)]
    X_train, X_test, y_train, y_test = common.split(X, y, args.seed)
    classes = [int(c) for c in data.target_names]
    n_train = len(y_train)
    # scikit-learn adds 0.5*alpha*sum(W^2)/batch_rows to each batch's loss; sqlgrad 0.5*l2*sum(W^2)
    l2 = cfg["alpha"] / cfg["batch"]
    arch = common.architecture(X.shape[1], cfg["hidden"], len(classes))

    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, f"{NAME}.duckdb")
        with duckdb.connect(path) as con:
            for part, X_part, y_part in (("train", X_train, y_train), ("test", X_test, y_test)):
                digits = np.asarray(y_part, dtype=np.int64)
                common.write_table(con, f"{NAME}_{part}", pixels, X_part, TARGET, digits)
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

    # scikit-learn, same split, same architecture and settings: mini-batches shuffled each epoch, like sqlgrad
    mlp = common.mlp(cfg, args.seed, batch=cfg["batch"], iterations=cfg["epochs"], shuffle=True)
    clf = make_pipeline(StandardScaler(), mlp)
    sk_seconds = common.fit(clf, X_train, y_train)
    sk_side, sk_pred = common.sklearn_classifier(
        clf, mlp, sk_seconds, X_train, y_train, X_test, y_test, len(classes)
    )

    test = {"accuracy": metrics["accuracy"], "log_loss": metrics["log_loss"]}
    results = common.results(
        NAME,
        "classification",
        args,
        {
            "source": "sklearn.datasets.load_digits",
            "train_rows": n_train,
            "test_rows": len(y_test),
            "features": X.shape[1],
            "classes": classes,
            "split": "stratified, 25% test",
        },
        arch,
        {
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
        sqlgrad=common.sqlgrad_side("python api", test, model.training, sg_wall, "accuracy", epochs=True),
        sklearn=sk_side,
        confusion_matrix={
            "labels": classes,
            "sqlgrad": common.confusion(classes, [r[true_at] for r in rows], [r[pred_at] for r in rows]),
            "sklearn": common.confusion(classes, y_test.tolist(), sk_pred.tolist()),
        },
    )
    epochs: dict[int, list[float]] = {}
    for h in model.history:  # the mean batch loss of each epoch, as scikit-learn's loss_curve_
        if "epoch" in h:
            epochs.setdefault(h["epoch"], []).append(h["loss"])
    curves = [
        common.curve("sqlgrad (in SQL)", list(epochs), [sum(v) / len(v) for v in epochs.values()]),
        common.curve("scikit-learn MLPClassifier", range(1, len(mlp.loss_curve_) + 1), mlp.loss_curve_, "--"),
    ]
    plot = {
        "size": [16, 5],
        "loss": common.loss_panel(
            results, curves, "epoch (mini-batches of 64, Adam)", "mean training loss (log loss + L2)"
        ),
        "panels": common.confusion_panels(results, rotation=0),
    }
    common.finish(results, plot, args.out, unit="epochs")


if __name__ == "__main__":
    main()
