"""One layer's products as scalar SQL against list dot products on DuckDB: the measurement behind
``Capabilities.vector_dot`` and its thresholds.

sqlgrad writes a layer ``z_j = b_j + SUM_i h_i * w_ij`` either as one scalar product per weight or, on an
engine that declares ``vector_dot``, as one ``list_inner_product(h_vec, list_value(w_0j, ...))`` per unit,
with ``h_vec = list_value(h_0, ...)`` packed once per row. Packing costs a copy per row, so lists pay only
on wide enough layers. This script times both forms of ``SUM(relu(z_j))`` for every unit (lists at every
shape, whatever the thresholds), as sqlgrad's own lowering writes them (:func:`sqlgrad.lowering.stage`
with and without the capability), over a data table cross-joined with a one-row weights table (as in a
training step), against numpy on the same rows. The last column says which form sqlgrad uses there::

    python benchmarks/vector_dot.py                      # 200k rows, the shapes below
    python benchmarks/vector_dot.py --rows 100000 --shapes 64x32,32x10 --out /tmp/vd.json

Each time is the best of ``--repeats`` runs after one warm-up; ratios are what to compare on a noisy
machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import duckdb
import numpy as np
import pandas as pd
from sqlglot import exp

from sqlgrad import autodiff as ad
from sqlgrad.engines.duckdb import DuckDBEngine
from sqlgrad.lowering import leaf_columns, stage
from sqlgrad.sqlexpr import alias, render, table

SHAPES = "2x2,4x4,8x1,8x4,8x8,16x2,16x4,16x16,32x1,32x2,32x10,32x32,64x2,64x32,64x64"


def best(con: duckdb.DuckDBPyConnection, sql: str, repeats: int) -> float:
    con.execute(sql).fetchall()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        con.execute(sql).fetchall()
        times.append(time.perf_counter() - t)
    return min(times)


def layer_sql(fan_in: int, fan_out: int, vector: bool) -> str:
    """``SELECT SUM(relu(z_0)), ... FROM data CROSS JOIN weights`` as sqlgrad lowers it."""
    x, w, b = ad.features(fan_in), ad.weight(1, fan_in, fan_out), ad.bias(1, fan_out)
    a = ad.activation("relu", ad.affine(x, w, b, "z1"), "a1")
    declared = DuckDBEngine.capabilities.vector_dot
    assert declared is not None
    # lists at every shape (the thresholds off), to measure where they pay
    dot = dataclasses.replace(declared, min_length=1, min_count=1) if vector else None
    st = stage([a], vector_dot=dot)
    base = exp.select(exp.Star()).from_(table("data")).join(table("weights"), join_type="cross")
    sums = [alias(exp.Sum(this=e), f"s{j}") for j, e in enumerate(st.exprs(a))]
    return render(st.build(base.subquery(), sums), "duckdb")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--shapes", default=SHAPES, help="comma-separated FANINxFANOUT")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="write the results as JSON")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    con = duckdb.connect()
    rows = []
    declared = DuckDBEngine.capabilities.vector_dot
    assert declared is not None
    heads = ("layer", "scalar s", "lists s", "lists/scalar", "scalar x np", "lists x np", "sqlgrad uses")
    print(" ".join(f"{h:>12}" for h in heads))
    for shape in args.shapes.split(","):
        fan_in, fan_out = (int(v) for v in shape.split("x"))
        X = rng.standard_normal((args.rows, fan_in))
        W, bias = rng.standard_normal((fan_in, fan_out)), rng.standard_normal(fan_out)
        con.register("frame", pd.DataFrame({f"x_{i}": X[:, i] for i in range(fan_in)}))
        con.execute("CREATE OR REPLACE TABLE data AS SELECT * FROM frame")
        con.unregister("frame")
        values = [float(v) for v in W.ravel()] + [float(v) for v in bias]  # w1_i_j row-major, then b1_j
        names = leaf_columns(ad.weight(1, fan_in, fan_out)) + leaf_columns(ad.bias(1, fan_out))
        params = [alias(exp.cast(exp.Placeholder(), "DOUBLE"), n) for n in names]
        con.execute(f"CREATE OR REPLACE TABLE weights AS {render(exp.select(*params), 'duckdb')}", values)
        scalar_sql, list_sql = layer_sql(fan_in, fan_out, False), layer_sql(fan_in, fan_out, True)
        scalar, lists = best(con, scalar_sql, args.repeats), best(con, list_sql, args.repeats)
        want = np.maximum(X @ W + bias, 0).sum(axis=0)
        got = np.array(con.execute(list_sql).fetchall()[0], dtype=float)
        assert np.allclose(got, want, rtol=1e-9, atol=1e-9), shape
        t = time.perf_counter()
        for _ in range(args.repeats):
            np.maximum(X @ W + bias, 0).sum(axis=0)
        numpy = (time.perf_counter() - t) / args.repeats
        row = {"fan_in": fan_in, "fan_out": fan_out, "rows": args.rows, "scalar_s": scalar, "lists_s": lists}
        row["numpy_s"] = numpy
        row["declared"] = declared.applies(fan_in, fan_out)
        rows.append(row)
        cells = (f"{scalar:.3f}", f"{lists:.3f}", f"{lists / scalar:.2f}", f"{scalar / numpy:.1f}")
        used = "lists" if row["declared"] else "scalar"
        print(" ".join(f"{c:>12}" for c in (shape, *cells, f"{lists / numpy:.1f}", used)))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"duckdb": duckdb.__version__, "results": rows}, f, indent=1)


if __name__ == "__main__":
    main()
