"""The issue-6 benchmark: sqlgrad against a numpy loop, scikit-learn and the article's query, as ratios.

Run from the repository root (sqlgrad installed, e.g. ``pip install -e .``)::

    python benchmarks/run.py                                   # full run, 13 to 30 minutes on 2 shared cores
    python benchmarks/run.py --quick                           # tiny sizes, under a minute (smoke test)
    python benchmarks/run.py --workloads W1,W4 --out /tmp/bench.json
    python benchmarks/run.py --from-json benchmarks/results/bench.json --markdown   # reprint a saved run

It prints one table (rich) and writes the JSON (default ``benchmarks/results/bench.json`` for a full run;
``--quick`` writes only with ``--out``). ``docs/benchmarks.md`` records a run and how to read it.

Workloads (full sizes; ``--quick`` shrinks rows, widths and iterations):

- W1: the article's 2-2-2 network (ReLU, softmax; ``examples/article/init.json``; lr 2.0, L2 1e-3),
  1M rows, 100 and 1,000 iterations; time to 99% training accuracy; the article's nested query at
  10 iterations; SQLite and DuckDB on the first 100k rows.
- W2: 64 features, 32 ReLU, 10 classes, 100k rows, 10 iterations (stepwise, long and auto 3; lr 0.1,
  no penalty).
- W3: 32 features, 64-64 ReLU, 2 classes, 1M rows, 2 iterations (stepwise 1; lr 0.1, no penalty); on the
  first 100k rows also recursive (2), long and auto (1 each): one long update on 1M rows takes minutes.
- W4: 10M rows of W1 in a DuckDB file, opened with ``SET memory_limit='100MB'`` (below the data size).

Data: x ~ N(0, 1) from ``numpy.random.default_rng(2017)``; W1/W4 ``y = x1 + x2 > 0``, W2/W3 the argmax of
a random linear map plus noise. W2/W3 start from sqlgrad's seeded He/Glorot initialisation (seed 0).

Every configuration runs in its own subprocess: copies of this file and of ``src/sqlgrad``, taken at the
start, run with ``--worker``, so the whole run measures one version while others edit the tree.
Measured per configuration:

- time: sqlgrad's ``model.training["seconds"]`` (the plan: SQL built, planned and run; not the data
  preparation nor the final evaluation, which are in ``call_seconds``), per iteration;
- the baseline: a numpy loop of the same full-batch gradient descent on the same data (one BLAS thread
  through threadpoolctl). One baseline run per workload gives the weights at every iteration count
  and the iteration reaching 99% accuracy (W1); ratios of time use short numpy runs (about
  ``--pair-seconds``) right before and after each configuration, on the same rows, because the pace of
  this shared machine drifts by 2x within minutes;
- scikit-learn's ``MLPClassifier`` (solver ``sgd``, one batch of all rows, constant rate, no momentum,
  ``alpha = l2 * rows``, ``tol=0``); with 10 classes it starts from the same weights and its result is
  checked against numpy; with 2 classes it trains a single logistic output, a different network;
- peak memory: ``ru_maxrss`` of the worker right after training (data loading included);
- SQL size: characters of the plan's statements rendered by the engine (stepwise and long: setup plus
  one iteration's statements);
- planning: the Python side (``TrainingProgram`` built, the plan's statements built and rendered) plus
  the engine's planning, timed as ``EXPLAIN`` of each statement on the same connection after training,
  counted once for a single statement and once per iteration for stepwise and long (DuckDB plans every
  ``execute`` anew; long: the ``SELECT`` of its ``CREATE TABLE ... AS``); its share is of the training
  time (``seconds``);
- the final weights against numpy's at the same iteration (relative, floor 1e-3 of the layer's largest).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# workers run a copy of this file from a scratch directory: the driver passes the repository root
ROOT = os.environ.get("SQLGRAD_BENCH_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTICLE_INIT = os.path.join(ROOT, "examples", "article", "init.json")
DATA_SEED = 2017
RUN_NAME = "sqlgrad_000000000000"  # as long as train()'s run names, so SQL sizes are exact
TARGET_ACCURACY = 0.99
Result = dict[str, Any]


# --- workloads ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Net:
    """A network and its training hyperparameters; ``init`` is ``article`` (the file) or ``seed0``."""

    features: int
    hidden: tuple[int, ...]
    classes: int
    lr: float
    l2: float
    init: str

    def as_dict(self) -> Result:
        return {
            "features": self.features,
            "hidden": list(self.hidden),
            "classes": self.classes,
            "lr": self.lr,
            "l2": self.l2,
            "init": self.init,
        }


@dataclass(frozen=True)
class Dataset:
    """Rows generated once per run and stored as ``.npy`` (numpy, scikit-learn, SQLite) and as a DuckDB
    file with one table ``data`` (DuckDB workers copy it into memory, or open it: W4)."""

    name: str
    kind: str  # "article" (x1, x2, y = x1 + x2 > 0) or "wide" (f0.., y = argmax of a linear map + noise)
    rows: int
    features: int
    classes: int


@dataclass
class Workload:
    name: str
    title: str
    net: Net
    dataset: Dataset
    configs: list[Result] = field(default_factory=list)


def article_net() -> Net:
    return Net(2, (2,), 2, 2.0, 1e-3, "article")


def workloads(quick: bool) -> dict[str, Workload]:
    """Every workload with its configurations, in the order they run."""
    if quick:
        w1_rows, w1_its, w1_small, nested_k, sk_its = 20_000, (10, 30), 5_000, 3, 10
        w2 = Net(8, (8,), 3, 0.1, 0.0, "seed0")
        w2_rows, w2_its, w2_step, w2_long = 2_000, 3, 2, 2
        w3 = Net(4, (8, 8), 2, 0.1, 0.0, "seed0")
        w3_rows, w3_its, w3_step, w3_small = 5_000, 2, 2, 1_000
        w4_rows, w4_its, w4_limit = 1_000_000, 2, "8MB"
    else:
        w1_rows, w1_its, w1_small, nested_k, sk_its = 1_000_000, (100, 1000), 100_000, 10, 100
        w2 = Net(64, (32,), 10, 0.1, 0.0, "seed0")
        w2_rows, w2_its, w2_step, w2_long = 100_000, 10, 3, 3
        w3 = Net(32, (64, 64), 2, 0.1, 0.0, "seed0")
        w3_rows, w3_its, w3_step, w3_small = 1_000_000, 2, 1, 100_000
        w4_rows, w4_its, w4_limit = 10_000_000, 3, "100MB"
    art = article_net()
    out: dict[str, Workload] = {}

    w = Workload("W1", "article 2-2-2", art, Dataset("article", "article", w1_rows, 2, 2))
    small = min(w1_small, w1_rows)
    w.configs = [
        numpy_cfg(w, w1_rows, max(w1_its), target=True),
        sql_cfg(w, "recursive", w1_rows, w1_its[0], planning=True),
        sql_cfg(w, "recursive", w1_rows, w1_its[1]),
        sql_cfg(w, "stepwise", w1_rows, w1_its[0], planning=True),
        sql_cfg(w, "stepwise", w1_rows, w1_its[1], budget=True),
        sql_cfg(w, "nested", w1_rows, nested_k, planning=True),
        {**sql_cfg(w, "recursive", w1_rows, 0), "to_target": True},
        {**sql_cfg(w, "stepwise", w1_rows, 0), "to_target": True},
        sk_cfg(w, w1_rows, sk_its),
        numpy_cfg(w, small, 10, role="baseline"),
        sql_cfg(w, "recursive", small, 10),
        sql_cfg(w, "stepwise", small, 10, engine="sqlite", planning=True),
    ]
    out[w.name] = w

    w = Workload("W2", "64-32-10", w2, Dataset("wide64", "wide", w2_rows, w2.features, w2.classes))
    w.configs = [
        numpy_cfg(w, w2_rows, w2_its, role="baseline"),
        sql_cfg(w, "recursive", w2_rows, w2_its, planning=True),
        sql_cfg(w, "stepwise", w2_rows, w2_step, planning=True),
        sql_cfg(w, "long", w2_rows, w2_long, planning=True),
        sql_cfg(w, "auto", w2_rows, w2_long),
        sql_cfg(w, "stepwise", min(w2_rows, 10_000), 1, engine="sqlite"),
        sk_cfg(w, w2_rows, w2_its),
    ]
    out[w.name] = w

    w = Workload("W3", "32-64-64-2", w3, Dataset("wide32", "wide", w3_rows, w3.features, w3.classes))
    w.configs = [
        numpy_cfg(w, w3_rows, w3_its, role="baseline"),
        sql_cfg(w, "recursive", w3_rows, w3_its, planning=True),
        sql_cfg(w, "stepwise", w3_rows, w3_step, planning=True),
        sk_cfg(w, w3_rows, w3_its),
        # the long plan joins rows x parameters: at 1M rows one update takes about 10 minutes, so it
        # runs (with recursive beside it) on the first 100k rows, against numpy on the same rows
        numpy_cfg(w, w3_small, 2, role="baseline"),
        sql_cfg(w, "recursive", w3_small, 2),
        sql_cfg(w, "long", w3_small, 1, planning=True),
        sql_cfg(w, "auto", w3_small, 1),
    ]
    out[w.name] = w

    w = Workload("W4", "2-2-2, file, memory limit", art, Dataset("article_file", "article", w4_rows, 2, 2))
    w.configs = [
        numpy_cfg(w, w4_rows, w4_its, role="baseline"),
        {**sql_cfg(w, "recursive", w4_rows, w4_its, planning=True), "file": True, "memory_limit": w4_limit},
        {**sql_cfg(w, "stepwise", w4_rows, w4_its, planning=True), "file": True, "memory_limit": w4_limit},
    ]
    out[w.name] = w
    return out


def base_cfg(w: Workload, kind: str, rows: int, iterations: int) -> Result:
    return {
        "workload": w.name,
        "kind": kind,
        "dataset": w.dataset.name,
        "rows": rows,
        "iterations": iterations,
        "net": w.net.as_dict(),
        "columns": column_names(w.dataset),
    }


def numpy_cfg(
    w: Workload, rows: int, iterations: int, target: bool = False, role: str = "baseline"
) -> Result:
    """numpy's loop: the ``baseline`` run of a workload (weights at every iteration count sqlgrad uses,
    the target accuracy), or a short ``paired`` run next to another configuration (its pace only)."""
    return {**base_cfg(w, "numpy", rows, iterations), "target": target, "role": role}


def sql_cfg(
    w: Workload,
    strategy: str,
    rows: int,
    iterations: int,
    engine: str = "duckdb",
    planning: bool = False,
    budget: bool = False,
) -> Result:
    cfg = {**base_cfg(w, "sqlgrad", rows, iterations), "strategy": strategy, "engine": engine}
    return {**cfg, "planning": planning, "budget": budget}


def sk_cfg(w: Workload, rows: int, iterations: int) -> Result:
    return base_cfg(w, "sklearn", rows, iterations)


# --- data -------------------------------------------------------------------------------------------


def generate(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(DATA_SEED)
    x = rng.normal(size=(ds.rows, ds.features))
    if ds.kind == "article":
        return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    y = np.argmax(
        x @ rng.normal(size=(ds.features, ds.classes)) + 0.5 * rng.normal(size=(ds.rows, ds.classes)), 1
    )
    y[: ds.classes] = np.arange(ds.classes)  # every class present
    return x, y.astype(np.int64)


def column_names(ds: Dataset) -> list[str]:
    return ["x1", "x2"] if ds.kind == "article" else [f"f{i}" for i in range(ds.features)]


def data_paths(data_dir: str, name: str) -> tuple[str, str, str]:
    base = os.path.join(data_dir, name)
    return base + "_x.npy", base + "_y.npy", base + ".duckdb"


def make_data(cfg: Result) -> Result:
    """Write a dataset's ``.npy`` files and its DuckDB file (table ``data``)."""
    import duckdb

    ds = Dataset(**cfg["dataset_def"])
    x, y = generate(ds)
    xp, yp, dbp = data_paths(cfg["data_dir"], ds.name)
    np.save(xp, x)
    np.save(yp, y)
    con = duckdb.connect(dbp)
    cols = {n: np.ascontiguousarray(x[:, i]) for i, n in enumerate(column_names(ds))}
    cols["y"] = y
    con.register("arrays", cols)
    con.execute("CREATE TABLE data AS SELECT * FROM arrays")
    con.unregister("arrays")
    con.execute("CHECKPOINT")
    con.close()
    return {
        "rows": ds.rows,
        "file_mb": os.path.getsize(dbp) / 1e6,
        "in_memory_mb": (x.nbytes + y.nbytes) / 1e6,
        "class_counts": np.bincount(y).tolist(),
    }


def load_arrays(cfg: Result) -> tuple[np.ndarray, np.ndarray]:
    xp, yp, _ = data_paths(cfg["data_dir"], cfg["dataset"])
    rows = cfg["rows"]
    x = np.array(np.load(xp, mmap_mode="r")[:rows])
    y = np.array(np.load(yp, mmap_mode="r")[:rows])
    return x, y


def init_weights(net: Result) -> list[tuple[np.ndarray, np.ndarray]]:
    """The starting weights: the article's file, or sqlgrad's seeded initialisation (seed 0)."""
    if net["init"] == "article":
        with open(ARTICLE_INIT, encoding="utf-8") as fh:
            layers = json.load(fh)["layers"]
        return [(np.array(la["W"], dtype=float), np.array(la["b"], dtype=float)) for la in layers]
    from sqlgrad.spec import build_spec
    from sqlgrad.spec import init_weights as sg_init

    spec = build_spec(net["features"], net["hidden"], "relu", "softmax", net["classes"], net["l2"], 0.0)
    return [(np.asarray(w, dtype=float), np.asarray(b, dtype=float)) for w, b in sg_init(spec, 0)]


def flat(weights: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[list[float]]:
    """One list per layer: W row-major, then b."""
    return [[*np.ravel(w).tolist(), *np.ravel(b).tolist()] for w, b in weights]


def peak_rss_kb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# --- the numpy baseline --------------------------------------------------------------------------------


def numpy_gd(
    x: np.ndarray,
    y: np.ndarray,
    init: list[tuple[np.ndarray, np.ndarray]],
    lr: float,
    l2: float,
    iterations: int,
    each: Callable[[int, list[np.ndarray], list[np.ndarray]], None] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[float], float]:
    """Full-batch gradient descent of a ReLU MLP with a softmax head, mean cross-entropy and
    ``0.5 * l2 * sum(W * W)`` over the weight matrices: sqlgrad's loss. Returns the weights, biases, the
    elapsed time after every iteration and the loss before the last update."""
    ws = [w.copy() for w, _ in init]
    bs = [b.copy() for _, b in init]
    n, depth = x.shape[0], len(ws)
    onehot = np.zeros((n, ws[-1].shape[1]))
    onehot[np.arange(n), y] = 1.0
    times: list[float] = []
    loss = float("nan")
    t0 = time.perf_counter()
    for k in range(iterations):
        acts, pre = [x], []
        a = x
        for i in range(depth):
            z = a @ ws[i]
            z += bs[i]
            if i < depth - 1:
                pre.append(z)
                a = np.maximum(z, 0.0)
                acts.append(a)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = float((np.log(s).sum() - (onehot * z).sum()) / n)
        if l2:
            loss += 0.5 * l2 * sum(float((w * w).sum()) for w in ws)
        d = e / s
        d -= onehot
        d /= n
        for i in range(depth - 1, -1, -1):
            gw = acts[i].T @ d
            gb = d.sum(axis=0)
            if i > 0:
                d = d @ ws[i].T
                d *= pre[i - 1] > 0
            if l2:
                gw += l2 * ws[i]
            ws[i] -= lr * gw
            bs[i] -= lr * gb
        times.append(time.perf_counter() - t0)
        if each is not None:
            each(k + 1, ws, bs)
    return ws, bs, times, loss


def accuracy(x: np.ndarray, y: np.ndarray, ws: list[np.ndarray], bs: list[np.ndarray]) -> float:
    a = x
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        a = a @ w + b
        if i < len(ws) - 1:
            a = np.maximum(a, 0.0)
    return float(np.mean(np.argmax(a, axis=1) == y))


def blas_limit() -> tuple[Any, str]:
    """A context that holds BLAS to one thread (threadpoolctl), and a description."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return contextlib.nullcontext(), "BLAS threads: library default (threadpoolctl not installed)"
    libs = {
        f"{i.get('internal_api')} {i.get('version')}"
        for i in threadpool_info()
        if i.get("user_api") == "blas"
    }
    return threadpool_limits(
        limits=1, user_api="blas"
    ), f"1 BLAS thread ({', '.join(sorted(libs)) or 'none'})"


def numpy_worker(cfg: Result) -> Result:
    x, y = load_arrays(cfg)
    net = cfg["net"]
    init = init_weights(net)
    rss_data = peak_rss_kb()
    k = cfg["iterations"]
    saved: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    checkpoints = set(cfg.get("checkpoints", [])) | {k}

    def each(i: int, ws: list[np.ndarray], bs: list[np.ndarray]) -> None:
        if cfg["target"] or i in checkpoints:
            saved[i] = ([w.copy() for w in ws], [b.copy() for b in bs])

    limit, blas = blas_limit()
    with limit:
        _, _, times, loss = numpy_gd(x, y, init, net["lr"], net["l2"], k, each)
    peak = peak_rss_kb()
    out: Result = {
        "seconds": times[-1] if times else 0.0,
        "per_iteration": times[-1] / k if k else None,
        "times_at": {str(c): times[c - 1] for c in sorted(checkpoints) if 0 < c <= k},
        "weights_at": {
            str(c): flat(list(zip(*saved[c], strict=True))) for c in sorted(checkpoints) if c in saved
        },
        "loss_before_last_update": loss,
        "accuracy": accuracy(x, y, *saved[k]) if k in saved else None,
        "blas": blas,
        "rss_after_data_kb": rss_data,
        "peak_rss_kb": peak,
    }
    if cfg["target"]:
        # the first iteration whose weights reach the target accuracy: every 10th, then the ones before
        first = None
        coarse = [i for i in range(10, k + 1, 10)] + ([k] if k % 10 else [])
        for i in coarse:
            if accuracy(x, y, *saved[i]) >= TARGET_ACCURACY:
                first = i
                for j in range(max(1, i - 9), i):
                    if accuracy(x, y, *saved[j]) >= TARGET_ACCURACY:
                        first = j
                        break
                break
        out["target_iteration"] = first
        out["target_seconds"] = times[first - 1] if first else None
        if first:
            out["weights_at"][str(first)] = flat(list(zip(*saved[first], strict=True)))
    return out


# --- scikit-learn -----------------------------------------------------------------------------------


def sklearn_worker(cfg: Result) -> Result:
    from sklearn.neural_network import MLPClassifier

    x, y = load_arrays(cfg)
    net, n, k = cfg["net"], cfg["rows"], cfg["iterations"]
    clf = MLPClassifier(
        hidden_layer_sizes=tuple(net["hidden"]),
        activation="relu",
        solver="sgd",
        alpha=net["l2"] * n,  # scikit-learn divides the penalty's gradient by the batch size
        batch_size=n,
        learning_rate="constant",
        learning_rate_init=net["lr"],
        momentum=0.0,
        nesterovs_momentum=False,
        max_iter=k,
        tol=0.0,
        n_iter_no_change=k + 1,
        shuffle=False,
        early_stopping=False,
        random_state=0,
    )
    same_net = net["classes"] > 2
    limit, blas = blas_limit()
    with limit, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if same_net:
            # one untimed update sets up the estimator; then the same start weights as numpy and sqlgrad
            clf.set_params(max_iter=1, n_iter_no_change=2).fit(x, y)
            init = init_weights(net)
            clf.coefs_ = [w.copy() for w, _ in init]
            clf.intercepts_ = [b.copy() for _, b in init]
            clf.loss_curve_, clf.n_iter_, clf.t_ = [], 0, 0
            clf.best_loss_, clf._no_improvement_count = np.inf, 0
            clf.set_params(max_iter=k, n_iter_no_change=k + 1, warm_start=True)
        rss_data = peak_rss_kb()
        t0 = time.perf_counter()
        clf.fit(x, y)
        seconds = time.perf_counter() - t0
    peak = peak_rss_kb()
    import sklearn

    return {
        "seconds": seconds,
        "per_iteration": seconds / k,
        "iterations_run": int(clf.n_iter_),
        "accuracy": float(clf.score(x, y)),
        "weights": flat(list(zip(clf.coefs_, clf.intercepts_, strict=True))) if same_net else None,
        "network": "the same network and start weights"
        if same_net
        else "one logistic output unit (scikit-learn's binary form), its own random start",
        "blas": blas,
        "sklearn": sklearn.__version__,
        "rss_after_data_kb": rss_data,
        "peak_rss_kb": peak,
    }


# --- sqlgrad ---------------------------------------------------------------------------------------------


def open_engine(cfg: Result) -> Any:
    """An engine holding the configuration's rows in a table ``data``."""
    _, _, dbp = data_paths(cfg["data_dir"], cfg["dataset"])
    if cfg["engine"] == "sqlite":
        from sqlgrad.engines.sqlite import SQLiteEngine

        x, y = load_arrays(cfg)
        eng = SQLiteEngine()
        rows = ((*r, int(v)) for r, v in zip(x.tolist(), y.tolist(), strict=True))
        eng.create_table("data", [*((c, "float") for c in cfg["columns"]), ("y", "integer")], rows)
        return eng
    from sqlgrad.engines.duckdb import DuckDBEngine

    if cfg.get("file"):
        eng = DuckDBEngine("duckdb:///" + dbp)
        if cfg.get("memory_limit"):
            eng.connection.execute(f"SET memory_limit = '{cfg['memory_limit']}'")
        return eng
    eng = DuckDBEngine()
    con = eng.connection
    con.execute(f"ATTACH '{dbp}' AS src (READ_ONLY)")
    con.execute(f"CREATE TABLE data AS SELECT * FROM src.data LIMIT {int(cfg['rows'])}")
    con.execute("DETACH src")
    return eng


def sqlgrad_worker(cfg: Result) -> Result:
    import sqlgrad

    net = cfg["net"]
    t0 = time.perf_counter()
    eng = open_engine(cfg)
    load_seconds = time.perf_counter() - t0
    rss_data = peak_rss_kb()
    init_path = None
    if net["init"] == "article":
        init_path = ARTICLE_INIT
    kwargs: Result = {"init": init_path} if init_path else {"hidden": net["hidden"], "seed": 0}
    t0 = time.perf_counter()
    model = sqlgrad.train(
        "data",
        "y",
        lr=net["lr"],
        l2=net["l2"],
        iterations=cfg["iterations"],
        strategy=cfg["strategy"],
        db=eng,
        **kwargs,
    )
    call_seconds = time.perf_counter() - t0
    peak = peak_rss_kb()
    out: Result = {
        "strategy_used": model.training["strategy"],
        "seconds": model.training["seconds"],
        "call_seconds": call_seconds,
        "load_seconds": load_seconds,
        "loss": model.training["loss"],
        "accuracy": model.training["metrics"].get("accuracy"),
        "weights": flat(model.weights),
        "rss_after_data_kb": rss_data,
        "peak_rss_kb": peak,
        "sqlgrad_file": sqlgrad.__file__,
    }
    if cfg["engine"] == "duckdb":
        con = eng.connection
        out["duckdb_threads"] = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
        out["duckdb_memory_limit"] = con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    if cfg.get("planning"):
        try:
            out["planning"] = measure_planning(eng, cfg, model)
        except Exception as err:  # recorded, the timing above stands
            out["planning"] = {"error": f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"}
    eng.close()
    return out


def measure_planning(eng: Any, cfg: Result, model: Any) -> Result:
    """Python build time and engine planning time (``EXPLAIN``) of the plan's statements; SQL size."""
    from sqlgrad.data import create_temp_table
    from sqlgrad.optim import make_optimizer
    from sqlgrad.plans import PLANS, PlanInput, TrainingProgram
    from sqlgrad.plans.stepwise import state_table_statement

    net = cfg["net"]
    t0 = time.perf_counter()
    program = TrainingProgram(model.spec, make_optimizer("gd", net["lr"]), eng.capabilities)
    program_seconds = time.perf_counter() - t0
    data_table = f"{RUN_NAME}_data"
    names = model.features
    cols = ", ".join(
        f'CAST("{f}" AS DOUBLE) AS "{c}"' for f, c in zip(names, program.data_columns[:-1], strict=True)
    )
    eng.execute(f'CREATE TEMPORARY TABLE "{data_table}" AS SELECT {cols}, "y" AS "y" FROM "data"')
    plan = PLANS[cfg["strategy"]]
    inp = PlanInput(program, data_table, init_weights(net), cfg["iterations"], RUN_NAME)
    state = inp.table_name("state")
    t0 = time.perf_counter()
    if cfg["strategy"] in ("stepwise", "long"):
        # one statement per update, re-planned by DuckDB at every update; the long plan's setup (the
        # data turned long, the parameter rows) and the state table are written once
        first = state_table_statement(state, inp) if cfg["strategy"] == "stepwise" else None
        if first is None:
            first_rows = plan.first_state(inp)
            setup_statements = [*plan.setup(inp), create_temp_table(state, first_rows)]  # type: ignore[attr-defined]
        else:
            setup_statements = [first]
        step_statements = plan.step(inp, state)  # type: ignore[attr-defined]
        setup = [eng.render(s) for s in setup_statements]
        step = [eng.render(s) for s in step_statements]
        # the long plan's update is CREATE TABLE ... AS SELECT, DROP, RENAME: the SELECT is planned
        explained = [eng.render(step_statements[0].expression)] if first is None else step
    else:
        setup, step = [], [eng.render(s) for s in plan.statements(inp)]
        explained = step
    build_seconds = time.perf_counter() - t0
    for sql in setup:
        eng.execute(sql)
    explain: list[float] = []
    with eng.training_settings():  # as train() plans them
        for sql in explained:
            t0 = time.perf_counter()
            eng.query("EXPLAIN " + sql)
            explain.append(time.perf_counter() - t0)
    times_planned = cfg["iterations"] if cfg["strategy"] in ("stepwise", "long") else 1
    planning = program_seconds + build_seconds + sum(explain) * times_planned
    return {
        "program_seconds": program_seconds,
        "build_render_seconds": build_seconds,
        "explain_seconds": explain,
        "times_planned": times_planned,
        "planning_seconds": planning,
        "sql_chars": sum(len(s) for s in setup + step),
        "sql_chars_per_iteration": sum(len(s) for s in step),
        "statements": len(setup) + len(step),
    }


# --- the driver ----------------------------------------------------------------------------------------


def worker(cfg: Result) -> Result:
    kinds: dict[str, Callable[[Result], Result]] = {
        "data": make_data,
        "numpy": numpy_worker,
        "sklearn": sklearn_worker,
        "sqlgrad": sqlgrad_worker,
    }
    out = kinds[cfg["kind"]](cfg)
    out["process_peak_rss_kb"] = peak_rss_kb()
    return out


def current_rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Runner:
    """Runs each configuration in a child process with a time and memory watchdog."""

    def __init__(self, args: argparse.Namespace, env: dict[str, str], data_dir: str, script: str) -> None:
        self.args = args
        self.script = script
        self.env = env
        self.data_dir = data_dir
        self.t_start = time.perf_counter()

    def log(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.t_start:7.1f}s] {msg}", file=sys.stderr, flush=True)

    def run(self, cfg: Result) -> Result:
        cfg = {**cfg, "data_dir": self.data_dir}
        cmd = [sys.executable, self.script, "--worker", json.dumps(cfg)]
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            env={**os.environ, **self.env},
        )
        killed: list[str] = []
        polled = [0]
        done = threading.Event()
        limit_kb = int(self.args.mem_limit_gb * 1e6)

        def watch() -> None:
            while not done.wait(0.2):
                rss = current_rss_kb(proc.pid)
                polled[0] = max(polled[0], rss)
                reason = ""
                if rss > limit_kb:
                    reason = f"killed: RSS {rss / 1e6:.1f} GB above {self.args.mem_limit_gb:g} GB"
                elif time.perf_counter() - t0 > self.args.timeout:
                    reason = f"killed: still running after {self.args.timeout:.0f} s"
                if reason:
                    killed.append(reason)
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            stdout, stderr = proc.communicate()
        finally:
            done.set()
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        watcher.join()
        res: Result = {
            "config": {k: v for k, v in cfg.items() if k != "data_dir"},
            "wall_seconds": time.perf_counter() - t0,
            "load_average_before": load,
            "polled_peak_rss_kb": polled[0],
        }
        lines = stdout.strip().splitlines()
        if killed:
            res["error"] = killed[0]
        elif proc.returncode != 0 or not lines:
            res["error"] = (stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1][:400]
        else:
            res.update(json.loads(lines[-1]))
        return res


def rel_diff(a: list[list[float]], b: list[list[float]]) -> float:
    """Largest ``|a - b| / max(|b|, 1e-3 * largest |b| of the layer)`` over every weight."""
    worst = 0.0
    for la, lb in zip(a, b, strict=True):
        va, vb = np.array(la), np.array(lb)
        floor = 1e-3 * max(float(np.max(np.abs(vb))), 1e-300)
        worst = max(worst, float(np.max(np.abs(va - vb) / np.maximum(np.abs(vb), floor))))
    return worst


def pytorch_row(workload: str) -> Result:
    """PyTorch is optional and not installed by the benchmark: recorded as skipped."""
    import importlib.util

    found = importlib.util.find_spec("torch") is not None
    why = (
        "importable, but not measured by this benchmark"
        if found
        else "not installed (the benchmark does not install it)"
    )
    cfg = {"workload": workload, "kind": "pytorch", "rows": 0, "iterations": 0}
    return {"config": cfg, "skipped": f"PyTorch CPU, every workload: {why}"}


def describe(r: Result) -> str:
    c = r["config"]
    what = c["kind"] if c["kind"] != "sqlgrad" else f"{c['engine']} {c['strategy']}"
    return f"{c['workload']} {what} rows={c['rows']} k={c['iterations']}"


def run_workload(w: Workload, runner: Runner, args: argparse.Namespace) -> list[Result]:
    """The workload's configurations, in order; then ratios to the numpy baseline of the same rows."""
    results: list[Result] = []
    targets: dict[int, int | None] = {}
    baselines: dict[int, float] = {}  # numpy's time per iteration in the baseline run, by row count
    # every iteration count sqlgrad uses on a row count, so numpy records its weights there
    checkpoints: dict[int, set[int]] = {}
    for c in w.configs:
        if c["kind"] == "sqlgrad" and c["iterations"]:
            checkpoints.setdefault(c["rows"], set()).add(c["iterations"])
    for c in w.configs:
        cfg = dict(c)
        if cfg["kind"] == "numpy":
            cfg["checkpoints"] = sorted(k for k in checkpoints.get(cfg["rows"], ()) if k <= cfg["iterations"])
        if cfg.get("to_target"):
            k = targets.get(cfg["rows"])
            if not k:
                results.append({"config": cfg, "skipped": "numpy did not reach the target accuracy"})
                continue
            cfg["iterations"] = k
        if cfg.get("budget"):
            prev = [
                r
                for r in results
                if r["config"]["kind"] == "sqlgrad"
                and r["config"]["strategy"] == cfg["strategy"]
                and r["config"]["rows"] == cfg["rows"]
                and "seconds" in r
            ]
            if prev:
                p = prev[-1]
                predicted = p["seconds"] / p["config"]["iterations"] * cfg["iterations"]
                if predicted > args.stepwise_budget:
                    results.append(
                        {
                            "config": cfg,
                            "skipped": f"predicted {predicted:.0f} s from {p['config']['iterations']} "
                            f"iterations, above --stepwise-budget {args.stepwise_budget:.0f} s",
                        }
                    )
                    runner.log(f"{describe(results[-1])}: {results[-1]['skipped']}")
                    continue
        base = baselines.get(cfg["rows"])
        paired = cfg["kind"] in ("sqlgrad", "sklearn") and base is not None and cfg["iterations"] > 0
        before = pair_numpy(w, cfg, base, runner, args) if paired and base else None
        r = runner.run(cfg)
        if paired and base and before is not None:
            after = pair_numpy(w, cfg, base, runner, args)
            paces = [x for x in (before, after) if x is not None]
            r["paired_numpy"] = {"before": before, "after": after, "per_iteration": sum(paces) / len(paces)}
        results.append(r)
        if cfg["kind"] == "numpy" and r.get("per_iteration"):
            baselines.setdefault(cfg["rows"], r["per_iteration"])
        if cfg["kind"] == "numpy" and cfg.get("target") and "target_iteration" in r:
            targets[cfg["rows"]] = r["target_iteration"]
        if "error" in r:
            runner.log(f"{describe(r)}: {r['error']}")
        else:
            extra = f", timed {r['seconds']:.2f}s" if "seconds" in r else ""
            runner.log(
                f"{describe(r)}: wall {r['wall_seconds']:.1f}s{extra}, peak {r['peak_rss_kb'] / 1e3:.0f} MB"
            )
    add_ratios(w, results)
    return results


def pair_numpy(
    w: Workload, cfg: Result, pace: float, runner: Runner, args: argparse.Namespace
) -> float | None:
    """numpy's time per iteration on the same rows, measured right next to a configuration: enough
    iterations for about ``--pair-seconds`` at the baseline's pace (at least 1, at most the
    configuration's)."""
    m = max(1, min(cfg["iterations"], round(args.pair_seconds / max(pace, 1e-9))))
    r = runner.run(numpy_cfg(w, cfg["rows"], m, role="paired"))
    return r.get("per_iteration")


def add_ratios(w: Workload, results: list[Result]) -> None:
    """Ratios to numpy: time per iteration against the numpy runs just before and after the
    configuration (else the baseline run), peak memory against the baseline run; the final weights
    against numpy's at the same iteration count."""
    numpy_runs: dict[int, list[Result]] = {}
    for r in results:
        if r["config"]["kind"] == "numpy" and r.get("per_iteration"):
            numpy_runs.setdefault(r["config"]["rows"], []).append(r)
    for r in results:
        c = r["config"]
        runs = numpy_runs.get(c["rows"], [])
        if not runs or "seconds" not in r or not c["iterations"]:
            continue
        paired = (r.get("paired_numpy") or {}).get("per_iteration")
        base = paired or min(x["per_iteration"] for x in runs)
        r["numpy_per_iteration"] = base
        r["numpy_reference"] = "paired runs (mean of before and after)" if paired else "baseline run"
        r["per_iteration"] = r["seconds"] / c["iterations"]
        r["x_numpy"] = r["per_iteration"] / base
        r["x_numpy_baseline_run"] = r["per_iteration"] / runs[0]["per_iteration"]
        r["x_numpy_memory"] = r["peak_rss_kb"] / max(x["peak_rss_kb"] for x in runs)
        plan = r.get("planning") or {}
        if "planning_seconds" in plan and c["kind"] == "sqlgrad":
            r["planning_share"] = plan["planning_seconds"] / r["seconds"]
            r["planning_x_numpy_iteration"] = plan["planning_seconds"] / base
            left = max(r["seconds"] - plan["planning_seconds"], 0.0)
            r["x_numpy_without_planning"] = left / c["iterations"] / base
        if c.get("to_target"):
            first = next((x for x in runs if x.get("target_seconds")), None)
            if first:
                # numpy's time per iteration is the same at every iteration: the target iteration at the
                # paired pace (the baseline run's own time to the target is kept beside it)
                r["numpy_target_seconds"] = first["target_iteration"] * base
                r["numpy_target_seconds_baseline_run"] = first["target_seconds"]
                r["x_numpy_to_target"] = r["seconds"] / r["numpy_target_seconds"]
                r["reached_target"] = (r.get("accuracy") or 0.0) >= TARGET_ACCURACY
        ref = None
        for x in runs:
            ref = x.get("weights_at", {}).get(str(c["iterations"])) or ref
        mine = r.get("weights")
        if ref and mine and c["kind"] in ("sqlgrad", "sklearn"):
            r["weights_rel_diff_vs_numpy"] = rel_diff(mine, ref)
    # SQL size and planning carried to the other runs of the same strategy and engine
    for r in results:
        c = r["config"]
        if c["kind"] != "sqlgrad" or "seconds" not in r or r.get("planning"):
            continue
        same = [
            x
            for x in results
            if x is not r
            and x["config"]["kind"] == "sqlgrad"
            and (x["config"]["strategy"], x["config"]["engine"]) == (c["strategy"], c["engine"])
            and "planning_seconds" in (x.get("planning") or {})
        ]
        if same:
            p = dict(same[0]["planning"])
            times = c["iterations"] if c["strategy"] in ("stepwise", "long") else 1
            p["planning_seconds"] = (
                p["program_seconds"] + p["build_render_seconds"] + sum(p["explain_seconds"]) * times
            )
            p["times_planned"] = times
            p["from"] = describe(same[0])
            r["planning"] = p
            r["planning_share"] = p["planning_seconds"] / r["seconds"]


# --- report ------------------------------------------------------------------------------------------


def fmt(v: Any, spec: str = ".3g", suffix: str = "") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:{spec}}{suffix}"


def row_label(r: Result) -> tuple[str, str]:
    c = r["config"]
    if c["kind"] == "numpy":
        return "numpy", c.get("role", "baseline")
    if c["kind"] == "sklearn":
        return "scikit-learn", "MLPClassifier sgd"
    if c["kind"] == "pytorch":
        return "pytorch", "CPU"
    label = c["strategy"] + (" to 99%" if c.get("to_target") else "")
    if c["strategy"] == "auto" and r.get("strategy_used"):
        label += f" ({r['strategy_used']})"
    return f"sqlgrad {c['engine']}", label


def table_rows(results: list[Result]) -> list[list[str]]:
    rows = []
    for r in results:
        c = r["config"]
        system, strategy = row_label(r)
        plan = r.get("planning") or {}
        note = r.get("error") or r.get("skipped") or ""
        note = note.split("refused a statement: ", 1)[-1]
        if not note and c["kind"] == "sqlgrad" and c.get("memory_limit"):
            note = f"memory_limit {c['memory_limit']}: completed"
        if not note and c["kind"] == "sklearn" and c["net"]["classes"] <= 2:
            note = "1 logistic output: other network"
        if not note and c["kind"] == "numpy" and r.get("target_iteration"):
            note = f"99% accuracy first at k={r['target_iteration']}"
        if not note and c.get("to_target") and "x_numpy_to_target" in r:
            ok = "reached" if r.get("reached_target") else "NOT reached"
            note = f"{ok}; x numpy to target {r['x_numpy_to_target']:.2f}"
        pair = r.get("paired_numpy") or {}
        if pair.get("before") and pair.get("after"):
            lo, hi = sorted((pair["before"], pair["after"]))
            if hi > 1.25 * lo:
                note = (
                    note + "; " if note else ""
                ) + f"numpy pace before/after {pair['before']:.3g}/{pair['after']:.3g} s"
        diff = r.get("weights_rel_diff_vs_numpy")
        rows.append(
            [
                c["workload"],
                system,
                strategy,
                f"{c['rows']:,}" if c["rows"] else "-",
                str(c["iterations"]) if c["rows"] else "-",
                fmt(
                    r.get("per_iteration") or (r["seconds"] / c["iterations"] if r.get("seconds") else None),
                    ".4f",
                ),
                fmt(r.get("x_numpy"), ".2f"),
                fmt(r["peak_rss_kb"] / 1e3 if "peak_rss_kb" in r else None, ".0f"),
                fmt(r.get("x_numpy_memory"), ".2f"),
                fmt(plan["sql_chars"] / 1e3 if "sql_chars" in plan else None, ".1f"),
                fmt(plan.get("planning_seconds"), ".2f"),
                fmt(100 * r["planning_share"] if "planning_share" in r else None, ".1f", "%"),
                fmt(diff, ".0e"),
                note,
            ]
        )
    return rows


HEADERS = [
    "W",
    "system",
    "strategy",
    "rows",
    "iters",
    "s/iter",
    "x numpy",
    "peak MB",
    "mem x np",
    "SQL KB",
    "plan s",
    "plan %",
    "w diff",
    "note",
]


def print_table(results: list[Result], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for h in HEADERS:
        table.add_column(h, justify="left" if h in ("W", "system", "strategy", "note") else "right")
    for row in table_rows(results):
        table.add_row(*row)
    Console(width=220).print(table)


def print_markdown(results: list[Result]) -> None:
    print("| " + " | ".join(HEADERS) + " |")
    print(
        "|" + "|".join("---" if h in ("W", "system", "strategy", "note") else "---:" for h in HEADERS) + "|"
    )
    for row in table_rows(results):
        print("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")


def print_report(report: Result, markdown: bool) -> None:
    kind = "quick" if report["quick"] else "full"
    if markdown:
        print_markdown(report["results"])
    else:
        print_table(report["results"], f"sqlgrad benchmark ({kind}): time and peak memory, and as x numpy")
    for g in report["goals"]:
        vals = ", ".join(
            f"{k}: {fmt(v, '.3g') if isinstance(v, float) else v}" for k, v in g["values"].items()
        )
        print(f"{'met    ' if g['met'] else 'NOT met'}  {g['goal']}  [{vals}]")
    print(f"total {report['total_seconds']:.0f} s")


def goals(results: list[Result]) -> list[Result]:
    """The issue-6 goals, each with the measured values and whether it is met."""

    def find(w: str, **kw: Any) -> list[Result]:
        out = []
        for r in results:
            c = r["config"]
            if c["workload"] == w and c["kind"] == "sqlgrad" and all(c.get(k) == v for k, v in kw.items()):
                out.append(r)
        return out

    out: list[Result] = []
    w1_all = [r for r in find("W1", engine="duckdb") if not r["config"].get("to_target")]
    top = max((r["config"]["rows"] for r in w1_all), default=0)
    w1_all = [r for r in w1_all if r["config"]["rows"] == top and r["config"]["strategy"] != "nested"]
    vals = {f"{r['config']['strategy']} {r['config']['iterations']}": r.get("x_numpy") for r in w1_all}
    best: dict[int, float] = {}
    for r in w1_all:
        if r.get("x_numpy") is not None:
            k = r["config"]["iterations"]
            best[k] = min(best.get(k, math.inf), r["x_numpy"])
    out.append(
        {
            "goal": "W1: sqlgrad on DuckDB <= 0.5x numpy at each iteration count (best strategy)",
            "values": vals,
            "met": bool(best) and all(v <= 0.5 for v in best.values()),
        }
    )
    w1 = [r for r in w1_all if r["config"]["strategy"] == "recursive"]
    for w in ("W2", "W3"):
        rs = [r for r in find(w, engine="duckdb") if r.get("x_numpy") is not None]
        top = max((r["config"]["rows"] for r in rs), default=0)
        vals = {}
        for r in rs:
            c = r["config"]
            label = c["strategy"] + (f" ({r['strategy_used']})" if c["strategy"] == "auto" else "")
            vals[label if c["rows"] == top else f"{label} at {c['rows']:,} rows"] = r["x_numpy"]
        at_top = [r["x_numpy"] for r in rs if r["config"]["rows"] == top]
        out.append(
            {
                "goal": f"{w}: <= 2x numpy per iteration (best DuckDB strategy, {top:,} rows)",
                "values": vals,
                "met": bool(at_top) and min(at_top) <= 2.0,
            }
        )
    mem = {str(r["config"]["iterations"]): r["peak_rss_kb"] / 1e3 for r in w1 if "peak_rss_kb" in r}
    out.append(
        {
            "goal": "memory flat in iterations (W1 recursive: peak MB by iterations, within 10%)",
            "values": mem,
            "met": len(mem) >= 2 and max(mem.values()) <= 1.1 * min(mem.values()),
        }
    )
    vals = {
        r["config"]["strategy"]: ("completed" if "seconds" in r else r.get("error", "?")) for r in find("W4")
    }
    out.append(
        {
            "goal": "W4 completes with data larger than the memory limit",
            "values": vals,
            "met": bool(vals) and all(v == "completed" for v in vals.values()),
        }
    )
    shares = {
        describe(r): r["planning_share"]
        for r in results
        if r["config"]["kind"] == "sqlgrad"
        and r["config"]["rows"] >= 100_000
        and r["config"]["engine"] == "duckdb"
        and r["config"]["strategy"] != "nested"
        and "planning_share" in r
    }
    out.append(
        {
            "goal": "planning < 10% of the training time, runs of 100k rows and more (DuckDB)",
            "values": shares,
            "met": bool(shares) and max(shares.values()) < 0.10,
        }
    )
    return out


# --- main --------------------------------------------------------------------------------------------


def read_lines(path: str) -> list[str]:
    """Lines of a text file, or none when it cannot be read."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.readlines()
    except OSError:
        return []


def machine() -> Result:
    from importlib import metadata

    import duckdb
    import sqlglot

    info: Result = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "duckdb": duckdb.__version__,
        "numpy": np.__version__,
        "sqlglot": sqlglot.__version__,
        "load_average_at_end": os.getloadavg(),
    }
    for dist in ("scikit-learn", "threadpoolctl", "rich"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = None
    lines = read_lines("/proc/cpuinfo")
    info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
    kb = next((int(ln.split()[1]) for ln in read_lines("/proc/meminfo") if ln.startswith("MemTotal:")), 0)
    info["memory_gb"] = round(kb / 1024**2, 1)
    try:
        import torch  # noqa: F401

        info["pytorch"] = "importable, not measured by this version of the benchmark"
    except ImportError:
        info["pytorch"] = "skipped: not installed"
    return info


def tree_hash(path: str) -> str:
    """sha256 over the relative paths and bytes of every file under ``path``."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            h.update(os.path.relpath(full, path).encode())
            with open(full, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


def git_state() -> Result:
    """The commit measured, and the files of src/ that differed from it (others work in the same tree)."""

    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""

    changed = git("status", "--porcelain", "--", "src").splitlines()
    return {"commit": git("rev-parse", "HEAD").strip(), "src_changes": [c.strip() for c in changed]}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--workloads", default="W1,W2,W3,W4", help="comma-separated subset of W1,W2,W3,W4")
    parser.add_argument(
        "--out", default=None, help="JSON file (default benchmarks/results/bench.json; none with --quick)"
    )
    parser.add_argument("--timeout", type=float, default=None, help="kill a configuration after this many s")
    parser.add_argument(
        "--mem-limit-gb", type=float, default=12.0, help="kill a configuration above this RSS"
    )
    parser.add_argument(
        "--stepwise-budget",
        type=float,
        default=120.0,
        help="skip W1 stepwise at 1,000 iterations when predicted above this many seconds",
    )
    parser.add_argument(
        "--pair-seconds",
        type=float,
        default=2.0,
        help="numpy runs about this long right before and after each configuration, for its ratio",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--from-json", help="print the table of a saved JSON file instead of running")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.from_json:
        with open(args.from_json, encoding="utf-8") as fh:
            print_report(json.load(fh), args.markdown)
        return
    args.timeout = args.timeout or (120.0 if args.quick else 900.0)
    chosen = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    every = workloads(args.quick)
    unknown = [w for w in chosen if w not in every]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(every)}")
    out_path = args.out or (None if args.quick else os.path.join(ROOT, "benchmarks", "results", "bench.json"))

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the finally below cleans up
    scratch = tempfile.mkdtemp(prefix="sqlgrad_bench_")
    try:
        # the workers import this copy of src/, so one run measures one version of sqlgrad
        shutil.copytree(
            os.path.join(ROOT, "src", "sqlgrad"),
            os.path.join(scratch, "src", "sqlgrad"),
            ignore=shutil.ignore_patterns("__pycache__"),
        )
        data_dir = os.path.join(scratch, "data")
        os.makedirs(data_dir)
        env = {"PYTHONPATH": os.path.join(scratch, "src"), "OMP_NUM_THREADS": "1", "SQLGRAD_BENCH_ROOT": ROOT}
        # and this copy of the benchmark, so that editing it during a run changes nothing
        script = os.path.join(scratch, "run.py")
        shutil.copy2(os.path.abspath(__file__), script)
        runner = Runner(args, env, data_dir, script)
        state = {**git_state(), "src_sha256": tree_hash(os.path.join(scratch, "src", "sqlgrad"))}
        datasets: Result = {}
        results: list[Result] = [pytorch_row(chosen[0])]
        for name in chosen:
            w = every[name]
            if w.dataset.name not in datasets:
                d = runner.run({"kind": "data", "dataset_def": w.dataset.__dict__, "workload": name})
                datasets[w.dataset.name] = {k: v for k, v in d.items() if k != "config"}
                runner.log(f"{name}: data {w.dataset.rows:,} rows: {d.get('error') or 'written'}")
            results.extend(run_workload(w, runner, args))
        total = time.perf_counter() - runner.t_start
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report: Result = {
        "command": " ".join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "quick": args.quick,
        "workloads": {
            n: {"title": every[n].title, "net": every[n].net.as_dict(), "dataset": every[n].dataset.__dict__}
            for n in chosen
        },
        "datasets": datasets,
        "sqlgrad": state,
        "machine": machine(),
        "target_accuracy": TARGET_ACCURACY,
        "results": results,
        "goals": goals(results),
        "total_seconds": total,
    }
    print_report(report, args.markdown)
    if out_path:
        os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
        with open(out_path, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)
            fh.write("\n")
        print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
