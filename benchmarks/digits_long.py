"""The digits classifier with the long plan on DuckDB: time and held-out accuracy.

scikit-learn's ``load_digits`` (1,797 8x8 images, 64 pixel features 0..16, 10 classes), a stratified 25%
test split (``random_state=0``: 1,347 training rows, 450 test rows), a 64-32-10 ReLU network trained in
DuckDB by ``sqlgrad.train`` with Adam (lr 0.01), mini-batches of 64, standardised inputs, seed 0; the
strategy is ``auto``, which takes ``long`` for this width on DuckDB (``Capabilities.long_from_params``).
The held-out accuracy is ``sqlgrad.evaluate`` on the test table, in SQL. Run from the repository root::

    python benchmarks/digits_long.py --epochs 30
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import sqlgrad
from sqlgrad.engines.duckdb import DuckDBEngine


def load(engine: DuckDBEngine, name: str, X: np.ndarray, y: np.ndarray) -> None:
    """The table ``name(p0..p63 DOUBLE, digit BIGINT)``, through DuckDB's own unnest of Python lists
    (faster than row-by-row inserts; not part of the timing)."""
    columns = [X[:, i].astype(float).tolist() for i in range(X.shape[1])] + [y.astype(int).tolist()]
    names = [f"p{i}" for i in range(X.shape[1])] + ["digit"]
    select = ", ".join(f'unnest(${k + 1}) AS "{c}"' for k, c in enumerate(names))
    engine.connection.execute(f'CREATE TABLE "{name}" AS SELECT {select}', columns)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--strategy", default="auto")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    engine = DuckDBEngine()
    load(engine, "digits_train", X_train, y_train)
    load(engine, "digits_test", X_test, y_test)
    t0 = time.perf_counter()
    model = sqlgrad.train(
        "digits_train",
        "digit",
        task="classification",
        hidden=[32],
        optimizer="adam",
        lr=args.lr,
        batch_size=args.batch_size,
        epochs=args.epochs,
        standardize=True,
        seed=args.seed,
        strategy=args.strategy,
        db=engine,
    )
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    test = sqlgrad.evaluate(model, "digits_test", db=engine)
    eval_s = time.perf_counter() - t1
    tr = model.training
    print(
        f"strategy={tr['strategy']} updates={tr['iterations']} epochs={args.epochs} lr={args.lr} "
        f"batch={args.batch_size} train_rows={tr['rows']}"
    )
    print(
        f"train() {seconds:.1f} s (training loop {tr['seconds']:.1f} s, "
        f"{tr['seconds'] / tr['iterations']:.3f} s/update); evaluate {eval_s:.1f} s"
    )
    print(f"final training loss {tr['loss']:.4f}, training accuracy {tr['metrics']['accuracy']:.4f}")
    print(f"held-out: n={test['n']} accuracy={test['accuracy']:.4f} log_loss={test['log_loss']:.4f}")
    engine.close()


if __name__ == "__main__":
    main()
