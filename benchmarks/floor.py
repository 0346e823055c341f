"""The floor under the wide workloads on DuckDB: the gradient sums alone, in every SQL form, against
numpy's whole update.

A full-batch update of a dense network needs, for every layer, the sums ``SUM_rows a_i * d_j`` (the
layer's inputs times its output deltas): ``rows * fan_in * fan_out`` multiply-adds, the same count as the
forward pass. numpy does them as one matrix product each (BLAS); SQL has no matrix-product aggregate,
so an engine does them with what it has. This script measures the fastest forms found on DuckDB, on the
very values a real update meets (a forward and backward pass of the workload's network in numpy, so the
ReLU zeros are where they would be), each checked against numpy's ``a.T @ d``:

- ``scalar``: one ``SUM(a_i * d_j)`` per weight (what sqlgrad writes today);
- ``blocks``: the rows gathered into blocks of ``--block`` rows as one list per column
  (``list(a_i)`` ... ``GROUP BY rowid // B``), one ``list_inner_product`` per weight and block, summed
  over the blocks;
- ``unnest``: each row's deltas unnested into one row per unit, the zero deltas (ReLU units that are
  off) skipped, one ``SUM(a_i * d)`` per input, ``GROUP BY`` unit (tried inside the training
  statement in session 12 and dropped, ``docs/benchmarks.md``).

Only execution counts: each query's planning (binding, optimizing and physical planning, as DuckDB's
profiler reports them) is taken off, since a recursive statement plans once. Nothing else of an update
is counted: no forward pass, no backward pass, no update, no state. So if even the best form's gradient
sums take more than twice numpy's *whole* update, no SQL plan built from these forms can meet the
issue-6 goal of "at most 2x numpy per update" on this machine and engine version::

    python benchmarks/floor.py                                   # W2 (100k rows) and W3 (1M rows)
    python benchmarks/floor.py --workloads W2 --rows 20000 --out /tmp/floor.json
    python benchmarks/floor.py --workloads 64x2,32x10,32x16,64x32 --out /tmp/shapes.json   # single layers

numpy runs with one BLAS thread (its fastest setting here, as in ``benchmarks/run.py``); DuckDB with its
default threads. Times are the best of ``--repeats`` runs after a warm-up; compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from itertools import pairwise

import duckdb
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_limits

WORKLOADS: dict[str, tuple[int, tuple[int, ...], int, int]] = {
    # name: (features, hidden, classes, rows)
    "W2": (64, (32,), 10, 100_000),
    "W3": (32, (64, 64), 2, 1_000_000),
}
FORMS = ("scalar", "blocks", "unnest")


def best(run: Callable[[], object], repeats: int) -> tuple[float, object]:
    """The best time of ``repeats`` runs after a warm-up, and the last run's result."""
    out = run()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t)
    return min(times), out


def profiled(con: duckdb.DuckDBPyConnection, sql: str, profile: str) -> tuple[float, float, list]:
    """Run ``sql`` under DuckDB's profiler: its total time, the part spent planning (binding,
    optimizing, physical planning), and its rows."""
    con.execute("PRAGMA enable_profiling = 'json'")
    con.execute(f"PRAGMA profiling_output = '{profile}'")
    result = con.execute(sql).fetchall()
    con.execute("PRAGMA disable_profiling")
    with open(profile, encoding="utf-8") as fh:
        info = json.load(fh)
    planning = sum(info[k]["total_time"] for k in ("planner", "optimizer", "physical_planner"))
    return info["query"]["total_time"], planning, result


def network(features: int, hidden: tuple[int, ...], classes: int, rows: int, seed: int = 0):
    """Data, He-initialised weights and a numpy update of softmax regression on ReLU layers.

    Returns the per-layer inputs and output deltas of the first update (what the gradient sums read)
    and a function doing one whole update (forward, backward, step) in place.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, features))
    y = np.argmax(
        x @ rng.standard_normal((features, classes)) + 0.3 * rng.standard_normal((rows, classes)), 1
    )
    onehot = np.eye(classes)[y]
    sizes = [features, *hidden, classes]
    weights = [rng.standard_normal((a, b)) * np.sqrt(2.0 / a) for a, b in pairwise(sizes)]
    biases = [np.zeros(b) for b in sizes[1:]]

    def forward_backward() -> tuple[list[np.ndarray], list[np.ndarray]]:
        acts = [x]
        for w, b in zip(weights[:-1], biases[:-1], strict=True):
            acts.append(np.maximum(acts[-1] @ w + b, 0.0))
        z = acts[-1] @ weights[-1] + biases[-1]
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        delta = (p - onehot) / rows
        deltas = [delta]
        for layer in range(len(weights) - 1, 0, -1):
            delta = (delta @ weights[layer].T) * (acts[layer] > 0)
            deltas.insert(0, delta)
        return acts, deltas

    def update() -> None:
        acts, deltas = forward_backward()
        for layer, (a, d) in enumerate(zip(acts, deltas, strict=True)):
            weights[layer] -= 0.1 * (a.T @ d)
            biases[layer] -= 0.1 * d.sum(axis=0)

    acts, deltas = forward_backward()
    return acts, deltas, update


def gradient_sql(layer: int, fan_in: int, fan_out: int, form: str, block: int) -> str:
    """The sums of one layer's weight gradient, row-major (i, j), in the given form."""
    a = [f'"a{layer}_{i}"' for i in range(fan_in)]
    d = [f'"d{layer}_{j}"' for j in range(fan_out)]
    if form == "scalar":
        sums = ", ".join(f"SUM({ai} * {dj})" for ai in a for dj in d)
        return f'SELECT {sums} FROM "rows"'
    if form == "blocks":
        lists = ", ".join(f"list({c}) AS {c}" for c in a + d)
        dots = ", ".join(f"SUM(list_inner_product({ai}, {dj}))" for ai in a for dj in d)
        return f'SELECT {dots} FROM (SELECT {lists} FROM "rows" GROUP BY rowid // {block})'
    if form == "unnest":
        cols = ", ".join(a)
        unit = f"UNNEST(range({fan_out})) AS u, UNNEST(list_value({', '.join(d)})) AS dv"
        sums = ", ".join(f"SUM({ai} * dv)" for ai in a)
        return (
            f'SELECT u, {sums} FROM (SELECT {cols}, {unit} FROM "rows") WHERE dv <> 0 GROUP BY u ORDER BY u'
        )
    raise ValueError(form)


def as_matrix(form: str, result: list[tuple], fan_in: int, fan_out: int) -> np.ndarray:
    if form == "unnest":  # one row per unit that is on somewhere: (u, sum over a_0, ..., a_n)
        out = np.zeros((fan_in, fan_out))
        for row in result:
            out[:, row[0]] = row[1:]
        return out
    return np.array(result[0], dtype=float).reshape(fan_in, fan_out)


def measure(name: str, rows: int | None, repeats: int, block: int) -> dict:
    if name in WORKLOADS:
        features, hidden, classes, default_rows = WORKLOADS[name]
    else:  # one layer, FANINxFANOUT: softmax regression, the shape sweep behind the gathering threshold
        fan_in, fan_out = (int(v) for v in name.split("x"))
        features, hidden, classes, default_rows = fan_in, (), fan_out, 100_000
    rows = rows or default_rows
    acts, deltas, update = network(features, hidden, classes, rows)
    with threadpool_limits(1):
        numpy_update, _ = best(update, repeats)
        numpy_grads, _ = best(lambda: [a.T @ d for a, d in zip(acts, deltas, strict=True)], repeats)
    frame = pd.DataFrame(
        {
            **{f"a{layer}_{i}": a[:, i] for layer, a in enumerate(acts) for i in range(a.shape[1])},
            **{f"d{layer}_{j}": d[:, j] for layer, d in enumerate(deltas) for j in range(d.shape[1])},
        }
    )
    con = duckdb.connect()
    con.register("frame", frame)
    con.execute('CREATE TABLE "rows" AS SELECT * FROM frame')
    con.unregister("frame")
    del frame
    con.execute("SET disabled_optimizers = 'common_subexpressions'")  # as sqlgrad trains
    forms: dict[str, dict] = {}
    profile = os.path.join(tempfile.mkdtemp(prefix="sqlgrad_floor_"), "profile.json")
    for form in FORMS:
        layers = []
        for layer, (a, d) in enumerate(zip(acts, deltas, strict=True)):
            sql = gradient_sql(layer, a.shape[1], d.shape[1], form, block)
            runs = [profiled(con, sql, profile) for _ in range(repeats + 1)][1:]  # after a warm-up
            total, planning, result = min(runs, key=lambda r: r[0] - r[1])
            got = as_matrix(form, result, a.shape[1], d.shape[1])  # type: ignore[arg-type]
            want = a.T @ d
            rel = float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300))
            layers.append(
                {
                    "layer": layer + 1,
                    "fan_in": a.shape[1],
                    "fan_out": d.shape[1],
                    "seconds": total,
                    "planning_seconds": planning,
                    "execution_seconds": total - planning,
                    "rel_diff_vs_numpy": rel,
                }
            )
        execution = sum(x["execution_seconds"] for x in layers)
        forms[form] = {
            "layers": layers,
            "execution_seconds": execution,
            "x_numpy_update": execution / numpy_update,
        }
    con.close()
    floor = min(forms.values(), key=lambda f: f["execution_seconds"])
    return {
        "workload": name,
        "features": features,
        "hidden": list(hidden),
        "classes": classes,
        "rows": rows,
        "multiply_adds": rows * sum(a.shape[1] * d.shape[1] for a, d in zip(acts, deltas, strict=True)),
        "numpy_update_seconds": numpy_update,
        "numpy_gradients_seconds": numpy_grads,
        "forms": forms,
        "floor_x_numpy_update": floor["x_numpy_update"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--workloads",
        default="W2,W3",
        help="comma-separated: W2, W3, or one layer FANINxFANOUT (100k rows; e.g. 64x2,32x10)",
    )
    parser.add_argument("--rows", type=int, help="rows for every workload (default: W2 100k, W3 1M)")
    parser.add_argument("--block", type=int, default=4096, help="rows per block of the blocks form")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", help="write the results as JSON")
    args = parser.parse_args()
    results = [measure(w, args.rows, args.repeats, args.block) for w in args.workloads.split(",")]
    table = Table(title="Gradient sums alone (execution, no planning) against numpy's whole update")
    for col in (
        "workload",
        "rows",
        "form",
        "seconds",
        "ns per multiply-add",
        "x numpy update",
        "max rel diff",
    ):
        table.add_column(col, justify="left" if col in ("workload", "form") else "right")
    for r in results:
        table.add_row(
            r["workload"], f"{r['rows']:,}", "numpy update", f"{r['numpy_update_seconds']:.3f}", "", "1.0", ""
        )
        for form, f in r["forms"].items():
            table.add_row(
                "",
                "",
                form,
                f"{f['execution_seconds']:.3f}",
                f"{f['execution_seconds'] / r['multiply_adds'] * 1e9:.2f}",
                f"{f['x_numpy_update']:.1f}",
                f"{max(x['rel_diff_vs_numpy'] for x in f['layers']):.1e}",
            )
    console = Console(width=120)
    console.print(table)
    for r in results:
        verdict = "above" if r["floor_x_numpy_update"] > 2 else "under"
        console.print(
            f"{r['workload']}: the fastest form's gradient sums alone take {r['floor_x_numpy_update']:.1f}x "
            f"numpy's whole update ({verdict} the 2x goal, before any forward pass, backward pass or update)"
        )
    if args.out:
        meta = {
            "duckdb": duckdb.__version__,
            "numpy": np.__version__,
            "threads": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "block": args.block,
        }
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump({"meta": meta, "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
