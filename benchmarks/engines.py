"""Per-engine timing of the article's network: 10k rows, 20 iterations, each strategy the engine runs,
as milliseconds per iteration and as a ratio to a numpy loop of the same gradient descent (same run).

    python benchmarks/engines.py duckdb:// sqlite:// postgresql://postgres@127.0.0.1:5432/test \\
        mysql://root@127.0.0.1:3306/test spark://local[2]
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from sqlgrad import connect, train
from sqlgrad.model import Model

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import reference as R  # noqa: E402

ROWS, ITERATIONS = 10_000, 20


def main(urls: list[str]) -> None:
    init = Model.load(os.path.join(HERE, "..", "examples", "article", "init.json"))
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, 2))
    y = (X.sum(axis=1) > 0).astype(int)
    rows = [(float(a), float(b), int(c)) for (a, b), c in zip(X.tolist(), y.tolist(), strict=True)]
    t = time.perf_counter()
    R.train_gd(init.weights, ["relu"], "softmax", X, y.astype(float), 2.0, 1e-3, ITERATIONS)
    numpy_s = time.perf_counter() - t
    print(f"{'engine':<12} {'strategy':<10} {'ms/iteration':>12} {'x numpy':>8}")
    for url in urls:
        eng = connect(url)
        name = "sg_measure_article"
        eng.drop_table(name)
        eng.create_table(name, [("x1", "float"), ("x2", "float"), ("y", "integer")], rows)
        strategies = ["stepwise"] + (["recursive"] if eng.capabilities.recursive_step else [])
        for s in strategies:
            m = train(name, "y", init=init, lr=2.0, l2=1e-3, iterations=ITERATIONS, strategy=s, db=eng)
            sec = m.training["seconds"]
            print(
                f"{url.split(':')[0]:<12} {s:<10} {sec / ITERATIONS * 1000:12.1f} {sec / numpy_s:8.1f}",
                flush=True,
            )
        eng.drop_table(name)
        eng.close()
    print(f"numpy: {numpy_s / ITERATIONS * 1000:.2f} ms/iteration")


if __name__ == "__main__":
    main(sys.argv[1:] or ["duckdb://"])
