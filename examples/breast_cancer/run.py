"""Breast cancer (569 tumours, 30 measurements, malignant or benign) trained in SQL with the Python API.

    python examples/breast_cancer/run.py [--quick] [--out DIR] [--seed 0]

The route a Python user takes:

1. scikit-learn's bundled copy of the Wisconsin diagnostic data (no download) is split 75/25, stratified
   by diagnosis, and written as the tables ``breast_cancer_train`` and ``breast_cancer_test`` of a DuckDB
   database file (scratch directory), the diagnosis as text;
2. ``sqlgrad.train("breast_cancer_train", "diagnosis", db=..., head="sigmoid")`` trains a 30-16-1 ReLU
   network with one logistic output (binary log loss) and full-batch Adam inside DuckDB, with each
   feature standardised in SQL (the measurements range from 0.001 to 4,254);
3. ``sqlgrad.evaluate`` computes the held-out accuracy and log loss on ``breast_cancer_test`` in SQL, and
   ``sqlgrad.predict`` scores the test rows in SQL (confusion matrix);
4. scikit-learn's ``MLPClassifier`` (whose binary output is also one logistic unit) trains the same
   architecture on the same split with the same settings (full-batch Adam, same learning rate and
   iterations, ``alpha = l2 * n_train`` so that both minimise the same penalised loss, standardised
   inputs) as a reference.

Writes ``results.json`` and ``breast_cancer.png`` (loss curves of both, confusion matrix of both on the
test set) to ``--out`` (default: this folder). ``--quick`` trains a smaller network for fewer iterations
(CI).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import _common as common  # noqa: E402

NAME = "breast_cancer"
TARGET = "diagnosis"
# common settings (Adam at 0.01, scikit-learn's default alpha), not tuned on the test set
FULL = {"hidden": [16], "lr": 0.01, "iterations": 300, "alpha": 1e-4}
QUICK = {"hidden": [8], "lr": 0.05, "iterations": 30, "alpha": 1e-4}


def main() -> None:
    args = common.parse_args(__doc__, HERE)
    cfg = QUICK if args.quick else FULL

    import duckdb
    from sklearn.datasets import load_breast_cancer

    import sqlgrad

    data = load_breast_cancer()
    X, y = data.data, data.target
    X_train, X_test, y_train, y_test = common.split(X, y, args.seed)
    classes = [str(c) for c in data.target_names]
    n_train = len(y_train)
    l2 = cfg["alpha"] / n_train  # sqlgrad's 0.5*l2*sum(W^2) equals scikit-learn's 0.5*alpha*sum(W^2)/n
    arch = common.architecture(X.shape[1], cfg["hidden"], 1)  # one logistic output

    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, f"{NAME}.duckdb")
        with duckdb.connect(path) as con:
            for part, X_part, y_part in (("train", X_train, y_train), ("test", X_test, y_test)):
                labels = data.target_names[y_part]
                common.write_table(con, f"{NAME}_{part}", data.feature_names, X_part, TARGET, labels)
        db = f"duckdb:///{path}"

        t0 = time.perf_counter()
        model = sqlgrad.train(
            f"{NAME}_train",
            TARGET,
            db=db,
            hidden=cfg["hidden"],
            activation="relu",
            head="sigmoid",
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

    test = {"accuracy": metrics["accuracy"], "log_loss": metrics["log_loss"]}
    common.full_batch_classifier(
        NAME,
        args,
        cfg,
        l2,
        arch,
        "sklearn.datasets.load_breast_cancer",
        classes,
        (X_train, X_test, y_train, y_test),
        common.sqlgrad_side("python api", test, model.training, sg_wall, "accuracy"),
        common.confusion(classes, [r[true_at] for r in rows], [r[pred_at] for r in rows]),
        model.history,
        head="sigmoid",
    )


if __name__ == "__main__":
    main()
