"""Recursive against stepwise on DuckDB as the rows grow: the measurement behind
``Capabilities.stepwise_from_rows``.

DuckDB runs the updates of a recursive CTE whose working set is one row (the parameter row) on one
thread: its recursive runtime executes a small frontier inline. One statement per update (stepwise) runs
on every thread but pays its planning at each update. So recursive wins on few rows and stepwise on
many, and where they cross depends on the threads.

    python benchmarks/recursive_threads.py                        # 100k, 300k, 600k, 1M rows; 30 updates
    python benchmarks/recursive_threads.py --rows 1000000 --url "duckdb://?threads=1"

For each row count and strategy (``recursive``, ``stepwise``, ``auto``) it prints sqlgrad's training time
(``model.training["seconds"]``) over the time of the same full-batch gradient descent in numpy measured
just before it, three times, and the median ratio. The network is the article's (2-2-2, ReLU, softmax,
``examples/article/init.json``, lr 2.0, L2 1e-3) on x ~ N(0, 1), y = x1 + x2 > 0
(``numpy.random.default_rng(2017)``), as W1 of ``benchmarks/run.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import sqlgrad
from sqlgrad.model import Model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INIT = os.path.join(ROOT, "examples", "article", "init.json")
LR, L2 = 2.0, 1e-3


def numpy_gd(weights: list, X: np.ndarray, y: np.ndarray, iterations: int) -> list:
    """The same full-batch gradient descent as sqlgrad's (mean cross-entropy plus 0.5 * L2 * |W|^2)."""
    n = len(X)
    Y = np.eye(2)[y]
    (W1, b1), (W2, b2) = [(w.copy(), b.copy()) for w, b in weights]
    for _ in range(iterations):
        z1 = X @ W1 + b1
        a1 = np.maximum(z1, 0)
        z2 = a1 @ W2 + b2
        z2 -= z2.max(axis=1, keepdims=True)
        p = np.exp(z2)
        p /= p.sum(axis=1, keepdims=True)
        d2 = (p - Y) / n
        d1 = (d2 @ W2.T) * (z1 > 0)
        W2, b2 = W2 - LR * (a1.T @ d2 + L2 * W2), b2 - LR * d2.sum(axis=0)
        W1, b1 = W1 - LR * (X.T @ d1 + L2 * W1), b1 - LR * d1.sum(axis=0)
    return [(W1, b1), (W2, b2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", default="100000,300000,600000,1000000", help="comma-separated row counts")
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--url", default="duckdb://", help="the DuckDB URL (e.g. duckdb://?threads=1)")
    args = parser.parse_args()
    init = Model.load(INIT)
    print(f"{'rows':>9}  {'strategy':<10} {'ran':<10} {'x numpy (median of ' + str(args.repeats) + ')':>24}")
    for n in (int(r) for r in args.rows.split(",")):
        rng = np.random.default_rng(2017)
        X = rng.normal(size=(n, 2))
        y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
        with sqlgrad.connect(args.url) as eng:
            eng.connection.execute(
                'CREATE TABLE "w1" AS SELECT unnest($1) AS x1, unnest($2) AS x2, unnest($3) AS y',
                [X[:, 0].tolist(), X[:, 1].tolist(), y.tolist()],
            )
            for strategy in ("recursive", "stepwise", "auto"):
                ratios, ran = [], ""
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    numpy_gd(init.weights, X, y, args.iterations)
                    numpy_seconds = time.perf_counter() - t0
                    model = sqlgrad.train(
                        "w1", "y", task="classification", init=init, lr=LR, l2=L2,
                        iterations=args.iterations, strategy=strategy, db=eng,
                    )  # fmt: skip
                    ratios.append(model.training["seconds"] / numpy_seconds)
                    ran = model.training["strategy"]
                print(f"{n:>9,}  {strategy:<10} {ran:<10} {statistics.median(ratios):>24.2f}", flush=True)


if __name__ == "__main__":
    main()
