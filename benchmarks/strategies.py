"""Measure sqlgrad's training strategies (nested, recursive, stepwise) on embedded DuckDB against numpy.

Run from the repository root (sqlgrad installed, e.g. ``pip install -e .``)::

    python benchmarks/strategies.py                       # full run, about 30 minutes on 2 busy cores
    python benchmarks/strategies.py --quick               # tiny subset, about 20 s (smoke test)
    python benchmarks/strategies.py --out benchmarks/results/strategies.json

What it measures (the article's 2-2-2 network: ReLU, softmax, init ``examples/article/init.json``,
lr 2.0, L2 1e-3; data x1, x2 ~ N(0, 1), y = x1 + x2 > 0 from ``numpy.random.default_rng(2017)``):

- ``recursive`` and ``stepwise`` for rows in {10k, 100k, 1M} x iterations in {10, 100, 1000};
- ``nested`` (the article's single query) at 100k rows for k = 1, 2, 5, ... until a run passes the time or
  memory limit (or is predicted to), with the size of its SQL;
- a wide model (64 features, 32 ReLU, 10-class softmax, 100k rows, 5 iterations, no L2), recursive vs
  stepwise; the same with L2 1e-3 is run once and recorded (it fails on DuckDB's expression depth);
- a plain numpy loop of the same full-batch gradient descent on the same data, in the same run: timed
  right before every sqlgrad run (the faster of one BLAS thread and the default), so each ``x_numpy``
  ratio compares two runs under the same load, and run once at full length for the weight check.

Every configuration runs in its own subprocess (this script with ``--worker``), so the peak resident set
(``ru_maxrss`` from ``os.wait4`` of that child) is per configuration; a watchdog polls the child's RSS
and kills it past ``--mem-limit-gb``. The training time is ``model.training["seconds"]`` (the plan
only); the ``train()`` call and the process wall time are recorded too. Final weights of every
strategy are compared with each other and with numpy (relative 1e-9, floor 1e-3 of the layer's largest
weight, as the test suite does). Results go to ``--out`` as JSON; Markdown tables are printed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTICLE_INIT = os.path.join(ROOT, "examples", "article", "init.json")
DATA_SEED = 2017
WIDE_SEED = 7
ARTICLE = {"lr": 2.0, "l2": 1e-3}
WIDE = {"features": 64, "hidden": 32, "classes": 10, "lr": 0.1, "l2": 0.0}
QUICK_WIDE = {**WIDE, "features": 8, "hidden": 4, "classes": 3}
RTOL = 1e-9
RUN_NAME = "sqlgrad_000000000000"  # same length as train()'s run names, so SQL sizes are exact

Result = dict[str, Any]


# --- data and the numpy reference (used by the workers) --------------------------------------------


def article_data(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """x1, x2 ~ N(0, 1) and y = 1 if x1 + x2 > 0 else 0, from a fixed seed."""
    rng = np.random.default_rng(DATA_SEED)
    x = rng.normal(size=(rows, 2))
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def wide_data(rows: int, net: Result) -> tuple[np.ndarray, np.ndarray]:
    """64 Gaussian features; labels the argmax of a random linear map plus noise (10 classes)."""
    rng = np.random.default_rng(DATA_SEED)
    d, c = net["features"], net["classes"]
    x = rng.normal(size=(rows, d))
    y = np.argmax(x @ rng.normal(size=(d, c)) + 0.5 * rng.normal(size=(rows, c)), axis=1)
    y[:c] = np.arange(c)  # every class present
    return x, y.astype(np.int64)


def wide_init(net: Result) -> list[tuple[np.ndarray, np.ndarray]]:
    """He-normal (ReLU layer) and Glorot-normal (softmax layer) weights, zero biases, fixed seed."""
    rng = np.random.default_rng(WIDE_SEED)
    d, h, c = net["features"], net["hidden"], net["classes"]
    w1 = rng.normal(0.0, math.sqrt(2.0 / d), size=(d, h))
    w2 = rng.normal(0.0, math.sqrt(2.0 / (h + c)), size=(h, c))
    return [(w1, np.zeros(h)), (w2, np.zeros(c))]


def article_init() -> list[tuple[np.ndarray, np.ndarray]]:
    with open(ARTICLE_INIT, encoding="utf-8") as fh:
        layers = json.load(fh)["layers"]
    return [(np.array(la["W"], dtype=float), np.array(la["b"], dtype=float)) for la in layers]


def numpy_step(
    w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray, x: np.ndarray, yi: np.ndarray, l2: float
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Loss and gradients of a one-hidden-layer ReLU network with a softmax head and an L2 penalty."""
    n = x.shape[0]
    z1 = x @ w1 + b1
    h = np.maximum(z1, 0.0)
    z = h @ w2 + b2
    m = z.max(axis=1, keepdims=True)
    lse = m + np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    rows = np.arange(n)
    loss = float(np.mean(lse[:, 0] - z[rows, yi])) + 0.5 * l2 * float(np.sum(w1 * w1) + np.sum(w2 * w2))
    dz = np.exp(z - lse)
    dz[rows, yi] -= 1.0
    gw2 = h.T @ dz / n + l2 * w2
    gb2 = dz.sum(axis=0) / n
    dh = (dz @ w2.T) * (z1 > 0)
    gw1 = x.T @ dh / n + l2 * w1
    gb1 = dh.sum(axis=0) / n
    return loss, gw1, gb1, gw2, gb2


def numpy_train(
    x: np.ndarray,
    y: np.ndarray,
    init: list[tuple[np.ndarray, np.ndarray]],
    lr: float,
    l2: float,
    checkpoints: Sequence[int],
) -> list[Result]:
    """Full-batch gradient descent; the elapsed time, weights and last loss at every checkpoint."""
    (w1, b1), (w2, b2) = ((w.copy(), b.copy()) for w, b in init)
    out: list[Result] = []
    loss = float("nan")
    t0 = time.perf_counter()
    for k in range(1, max(checkpoints) + 1):
        loss, gw1, gb1, gw2, gb2 = numpy_step(w1, b1, w2, b2, x, y, l2)
        w1, b1, w2, b2 = w1 - lr * gw1, b1 - lr * gb1, w2 - lr * gw2, b2 - lr * gb2
        if k in checkpoints:
            out.append(
                {
                    "iterations": k,
                    "seconds": time.perf_counter() - t0,
                    "loss_before_last_step": loss,
                    "weights": flat([(w1, b1), (w2, b2)]),
                }
            )
    return out


def flat(weights: Sequence[tuple[np.ndarray, np.ndarray]]) -> list[list[float]]:
    """One flat list per layer: W row-major, then b."""
    return [[*map(float, np.ravel(w)), *map(float, np.ravel(b))] for w, b in weights]


def rss_kb() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# --- workers: one configuration per process ---------------------------------------------------------


def worker(cfg: Result) -> Result:
    if cfg["kind"] == "numpy":
        return numpy_worker(cfg)
    return sqlgrad_worker(cfg)


def numpy_worker(cfg: Result) -> Result:
    wide = cfg["model"] == "wide"
    hp = cfg["net"] if wide else ARTICLE
    x, y = wide_data(cfg["rows"], hp) if wide else article_data(cfg["rows"])
    init = wide_init(hp) if wide else article_init()
    base = rss_kb()
    points = numpy_train(x, y, init, float(hp["lr"]), float(hp["l2"]), cfg["checkpoints"])
    return {"points": points, "rss_after_data_kb": base, "peak_rss_self_kb": rss_kb()}


def sqlgrad_worker(cfg: Result) -> Result:
    with tempfile.TemporaryDirectory(prefix="sqlgrad_strategies_") as tmp:
        return sqlgrad_run(cfg, tmp)


def sqlgrad_run(cfg: Result, tmp: str) -> Result:
    import sqlgrad
    from sqlgrad.engines.duckdb import DuckDBEngine
    from sqlgrad.plans import PLANS, PlanInput, TrainingProgram
    from sqlgrad.spec import GradientDescent

    wide = cfg["model"] == "wide"
    hp = cfg["net"] if wide else ARTICLE
    x, y = wide_data(cfg["rows"], hp) if wide else article_data(cfg["rows"])
    init_path = ARTICLE_INIT
    if wide:
        init_path = os.path.join(tmp, "init.json")
        with open(init_path, "w", encoding="utf-8") as fh:
            layers = [
                {"W": w.tolist(), "b": b.tolist(), "activation": a}
                for (w, b), a in zip(wide_init(hp), ["relu", "softmax"], strict=True)
            ]
            json.dump({"layers": layers}, fh)
    names = [f"f{i}" for i in range(x.shape[1])] if wide else ["x1", "x2"]
    columns = {n: np.ascontiguousarray(x[:, i]) for i, n in enumerate(names)}
    columns["y"] = y
    engine = DuckDBEngine()
    con = engine.connection
    t0 = time.perf_counter()
    con.register("bench_arrays", columns)
    con.execute("CREATE TABLE data AS SELECT * FROM bench_arrays")
    con.unregister("bench_arrays")
    load_seconds = time.perf_counter() - t0
    del columns
    base = rss_kb()
    t0 = time.perf_counter()
    model = sqlgrad.train(
        "data",
        "y",
        init=init_path,
        lr=float(hp["lr"]),
        l2=float(hp["l2"]),
        iterations=cfg["iterations"],
        strategy=cfg["strategy"],
        db=engine,
    )
    call_seconds = time.perf_counter() - t0
    peak_train = rss_kb()
    # the statements the plan issued, rendered again to count characters
    t0 = time.perf_counter()
    plan = PLANS[model.training["strategy"]]
    program = TrainingProgram(model.spec, GradientDescent(float(hp["lr"])), engine.capabilities)
    inp = PlanInput(
        program, f"{RUN_NAME}_data", sqlgrad.Model.load(init_path).weights, cfg["iterations"], RUN_NAME
    )
    statements = [engine.render(s) for s in plan.statements(inp)]
    render_seconds = time.perf_counter() - t0
    threads = con.execute("SELECT current_setting('threads')").fetchone()
    engine.close()
    return {
        "strategy_used": model.training["strategy"],
        "seconds": model.training["seconds"],
        "train_call_seconds": call_seconds,
        "load_seconds": load_seconds,
        "loss": model.training["loss"],
        "accuracy": model.training["metrics"].get("accuracy"),
        "history_length": len(model.history),
        "weights": flat(model.weights),
        "sql_chars": sum(len(s) for s in statements),
        "sql_statements": len(statements),
        "render_seconds": render_seconds,
        "duckdb_threads": int(threads[0]) if threads else None,
        "sqlgrad_file": sqlgrad.__file__,
        "rss_after_data_kb": base,
        "peak_rss_train_kb": peak_train,
    }


# --- the driver ---------------------------------------------------------------------------------------


def current_rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_child(cfg: Result, timeout: float, mem_limit_kb: int, env: dict[str, str] | None = None) -> Result:
    """Run one configuration in a fresh process; its result, wall time, peak RSS and any kill reason."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(cfg)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    killed: list[str] = []
    polled = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.1):
            rss = current_rss_kb(proc.pid)
            polled[0] = max(polled[0], rss)
            reason = ""
            if rss > mem_limit_kb:
                reason = f"killed: RSS {rss / 1e6:.1f} GB passed the {mem_limit_kb / 1e6:.0f} GB limit"
            elif time.perf_counter() - t0 > timeout:
                reason = f"killed: still running after {timeout:.0f} s"
            if reason:
                killed.append(reason)
                os.killpg(proc.pid, signal.SIGKILL)
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out_box: list[str] = []
    err_box: list[str] = []
    readers = [
        threading.Thread(target=lambda: out_box.append(proc.stdout.read() if proc.stdout else "")),
        threading.Thread(target=lambda: err_box.append(proc.stderr.read() if proc.stderr else "")),
    ]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    for r in readers:
        r.join()
    watcher.join()
    res: Result = {
        "config": cfg,
        "wall_seconds": wall,
        "peak_rss_kb": int(usage.ru_maxrss),
        "polled_peak_rss_kb": polled[0],
        "returncode": proc.returncode,
    }
    if killed:
        res["error"] = killed[0]
        res["wall_seconds_at_kill"] = wall
        return res
    out = "".join(out_box).strip().splitlines()
    if proc.returncode != 0 or not out:
        res["error"] = ("".join(err_box).strip().splitlines() or ["no output"])[-1]
        return res
    res.update(json.loads(out[-1]))
    return res


def rel_diff(a: list[list[float]], b: list[list[float]]) -> float:
    """Largest |a - b| / max(|b|, 1e-3 * largest |b| of the layer), over every weight."""
    worst = 0.0
    for la, lb in zip(a, b, strict=True):
        va, vb = np.array(la), np.array(lb)
        floor = 1e-3 * max(float(np.max(np.abs(vb))), 1e-300)
        worst = max(worst, float(np.max(np.abs(va - vb) / np.maximum(np.abs(vb), floor))))
    return worst


BLAS_ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.mem_limit_kb = int(args.mem_limit_gb * 1e6)
        self.pair_budget = 200_000 if args.quick else 5_000_000
        self.runs: list[Result] = []
        self.t_start = time.perf_counter()
        self.env: dict[str, str] = {}

    def log(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.t_start:7.1f}s] {msg}", file=sys.stderr, flush=True)

    def paired_numpy(self, cfg: Result) -> Result:
        """numpy's time for a configuration, measured right before it (same load): ``m`` iterations of
        the same loop on the same data, ``m`` about ``pair_budget`` row-iterations (at least 10, fewer for
        wide inputs), as seconds per iteration times the configuration's iterations.
        The faster of one BLAS thread and OpenBLAS's default counts: with the default (2 threads) on a
        busy machine the 1M-row loop was 7x slower than with one."""
        its = cfg["iterations"]
        width = max(1, int(cfg["net"]["features"]) // 2) if cfg["model"] == "wide" else 1
        m = max(10, self.pair_budget // (cfg["rows"] * width))
        settings = [("1 thread", BLAS_ONE_THREAD), ("default", {})]
        best: Result | None = None
        for label, env in settings:
            ncfg = {k: v for k, v in cfg.items() if k not in ("kind", "strategy", "iterations")}
            r = run_child(
                {**ncfg, "kind": "numpy", "checkpoints": [m]},
                self.args.timeout,
                self.mem_limit_kb,
                {**self.env, **env},
            )
            if "points" not in r:
                continue
            per_it = r["points"][0]["seconds"] / m
            if best is None or per_it < best["per_iteration"]:
                best = {
                    "iterations_timed": m,
                    "per_iteration": per_it,
                    "seconds": per_it * its,
                    "blas": label,
                    "peak_rss_kb": r["peak_rss_kb"],
                }
        return best or {"error": "numpy failed"}

    def run(
        self,
        cfg: Result,
        repeat: int = 1,
        timeout: float | None = None,
        env: dict[str, str] | None = None,
        pair: bool = False,
    ) -> Result:
        """Run a configuration ``repeat`` times (separate processes), each after its paired numpy timing
        when ``pair``; keep the run of median training time, and the median ratio to numpy."""
        tries = []
        for _ in range(repeat):
            ref = self.paired_numpy(cfg) if pair else None
            load = os.getloadavg()[0]
            r = run_child(cfg, timeout or self.args.timeout, self.mem_limit_kb, {**self.env, **(env or {})})
            r["load_average_before"] = load
            if ref is not None and "seconds" in r and "seconds" in ref:
                r["paired_numpy"] = ref
                r["x_numpy"] = r["seconds"] / ref["seconds"]
                r["train_call_x_numpy"] = r["train_call_seconds"] / ref["seconds"]
            tries.append(r)
            if "error" in r:
                break
        ok = [t for t in tries if "error" not in t]
        key = "seconds" if cfg["kind"] == "sqlgrad" else "wall_seconds"
        best = sorted(ok, key=lambda t: t[key])[len(ok) // 2] if ok else tries[-1]
        best = dict(best)
        best["repeats"] = len(tries)
        if len(ok) > 1:
            best["all_seconds"] = [t[key] for t in ok]
            best["peak_rss_kb"] = max(t["peak_rss_kb"] for t in ok)
            ratios = [t["x_numpy"] for t in ok if "x_numpy" in t]
            if ratios:
                best["all_x_numpy"] = ratios
                best["x_numpy"] = statistics.median(ratios)
        self.runs.append(best)
        label = " ".join(f"{k}={v}" for k, v in cfg.items() if k not in ("checkpoints", "net"))
        if "error" in best:
            self.log(f"{label}: {best['error']}")
        elif cfg["kind"] == "sqlgrad":
            self.log(
                f"{label}: train {best['seconds']:.3f}s (x numpy {best.get('x_numpy', float('nan')):.2f}), "
                f"wall {best['wall_seconds']:.1f}s, peak {best['peak_rss_kb'] / 1e3:.0f} MB, "
                f"sql {best['sql_chars']} chars"
            )
        else:
            pts = ", ".join(f"{p['iterations']}: {p['seconds']:.3f}s" for p in best["points"])
            self.log(f"{label}: {pts}; peak {best['peak_rss_kb'] / 1e3:.0f} MB")
        return best


def machine() -> Result:
    import duckdb

    mem_kb = 0
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = ""
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "numpy": np.__version__,
        "sqlglot": importlib.metadata.version("sqlglot"),
        "platform": platform.platform(),
        "load_average_at_end": os.getloadavg(),
    }


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
    """The commit measured, and whether src/ had uncommitted changes (others work in the same repo)."""

    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""

    changed = git("status", "--porcelain", "--", "src").splitlines()
    return {"commit": git("rev-parse", "HEAD").strip(), "src_changes": [c.strip() for c in changed]}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a tiny subset, for smoke tests")
    parser.add_argument(
        "--out",
        default=None,
        help="JSON file to write (default: none with --quick, benchmarks/results/strategies.json otherwise)",
    )
    parser.add_argument("--mem-limit-gb", type=float, default=12.0, help="nested: stop past this peak RSS")
    parser.add_argument("--nested-time-limit", type=float, default=90.0, help="nested: stop past this time")
    parser.add_argument(
        "--stepwise-budget",
        type=float,
        default=180.0,
        help="skip stepwise 1000 iterations x 1M rows if predicted above this many seconds",
    )
    parser.add_argument(
        "--timeout", type=float, default=1200.0, help="kill any child after this many seconds"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    out = args.out or (None if args.quick else os.path.join(ROOT, "benchmarks", "results", "strategies.json"))
    bench = Bench(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the snapshot when stopped
    # The workers import a copy of src/ taken now, so the whole run measures one version of sqlgrad
    # even while others edit the repository.
    snapshot = tempfile.mkdtemp(prefix="sqlgrad_strategies_src_")
    shutil.copytree(
        os.path.join(ROOT, "src", "sqlgrad"),
        os.path.join(snapshot, "sqlgrad"),
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    bench.env = {"PYTHONPATH": snapshot}
    try:
        sqlgrad_state = {**git_state(), "src_sha256": tree_hash(os.path.join(snapshot, "sqlgrad"))}
        report = measure(bench, args)
    finally:
        shutil.rmtree(snapshot, ignore_errors=True)
    report["sqlgrad"] = sqlgrad_state
    report["machine"] = machine()
    report["command"] = " ".join(["python", os.path.relpath(os.path.abspath(__file__), ROOT), *sys.argv[1:]])
    report["total_seconds"] = time.perf_counter() - bench.t_start
    print(markdown(report))
    if out:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)
            fh.write("\n")
        bench.log(f"wrote {out}")


def measure(bench: Bench, args: argparse.Namespace) -> Result:
    quick = args.quick
    rows_grid = [2_000, 20_000] if quick else [10_000, 100_000, 1_000_000]
    iter_grid = [2, 10] if quick else [10, 100, 1000]
    nested_rows = 2_000 if quick else 100_000
    nested_ks = [1, 2, 5] if quick else [1, 2, 5, 10, 20, 50, 100, 150, 200]
    wide_rows, wide_iters = (2_000, 2) if quick else (100_000, 5)
    net = QUICK_WIDE if quick else WIDE

    def repeats(rows: int, iterations: int) -> int:
        return 1 if quick or rows * iterations > 10_000_000 else 3

    # numpy, full length, for the final weights (and a reference time; the ratios use the paired timings)
    numpy_ref: dict[tuple[str, int, int], Result] = {}
    for rows in rows_grid:
        checkpoints = sorted({*iter_grid, *(nested_ks if rows == nested_rows else [])})
        r = bench.run(
            {"kind": "numpy", "model": "article", "rows": rows, "checkpoints": checkpoints},
            env=BLAS_ONE_THREAD,
        )
        for p in r.get("points", []):
            numpy_ref[("article", rows, p["iterations"])] = {**p, "peak_rss_kb": r["peak_rss_kb"]}

    # recursive and stepwise grid
    grid: list[Result] = []
    for rows in rows_grid:
        for its in iter_grid:
            for strategy in ("recursive", "stepwise"):
                cfg = {
                    "kind": "sqlgrad",
                    "model": "article",
                    "strategy": strategy,
                    "rows": rows,
                    "iterations": its,
                }
                if strategy == "stepwise" and its == iter_grid[-1] and rows == rows_grid[-1] and not quick:
                    prev = [g for g in grid if g["config"] == {**cfg, "iterations": iter_grid[-2]}]
                    if prev and "seconds" in prev[0]:
                        predicted = prev[0]["seconds"] * its / iter_grid[-2]
                        if predicted > args.stepwise_budget:
                            grid.append(
                                {
                                    "config": cfg,
                                    "skipped": f"predicted {predicted:.0f} s from "
                                    f"{iter_grid[-2]} iterations, above {args.stepwise_budget:.0f} s",
                                }
                            )
                            bench.log(f"skip {cfg}: {grid[-1]['skipped']}")
                            continue
                grid.append(bench.run(cfg, repeat=repeats(rows, its), pair=True))
    # auto on the middle configuration: which plan it picks
    mid_rows, mid_its = rows_grid[len(rows_grid) // 2], iter_grid[len(iter_grid) // 2]
    auto = bench.run(
        {"kind": "sqlgrad", "model": "article", "strategy": "auto", "rows": mid_rows, "iterations": mid_its},
        repeat=repeats(mid_rows, mid_its),
        pair=True,
    )

    # nested: k grows until a run passes a limit (or would, by the growth seen so far)
    nested: list[Result] = []
    nested_stop = "ran every k of the list"
    for k in nested_ks:
        done = [n for n in nested if "seconds" in n]
        if len(done) >= 2 and not quick:
            a, b = done[-2], done[-1]
            ka, kb = a["config"]["iterations"], b["config"]["iterations"]
            pt = math.log(b["seconds"] / a["seconds"]) / math.log(kb / ka)
            ma, mb = (max(1, n["peak_rss_kb"] - n["rss_after_data_kb"]) for n in (a, b))
            pm = math.log(mb / ma) / math.log(kb / ka)
            t_pred = b["seconds"] * (k / kb) ** pt
            m_pred = b["rss_after_data_kb"] + mb * (k / kb) ** pm
            if t_pred > args.nested_time_limit or m_pred > bench.mem_limit_kb:
                nested_stop = (
                    f"k={k} not run: from k={ka} and k={kb} time grows as k^{pt:.2f} and memory "
                    f"above the data as k^{pm:.2f}, predicting {t_pred:.0f} s and "
                    f"{m_pred / 1e6:.1f} GB, past the limits "
                    f"({args.nested_time_limit:.0f} s, {args.mem_limit_gb:.0f} GB)"
                )
                bench.log(nested_stop)
                break
        r = bench.run(
            {
                "kind": "sqlgrad",
                "model": "article",
                "strategy": "nested",
                "rows": nested_rows,
                "iterations": k,
            },
            repeat=1 if quick or k > 20 else 3,
            timeout=2 * args.nested_time_limit,
            pair=True,
        )
        nested.append(r)
        if "error" in r:
            nested_stop = f"k={k}: {r['error']}"
            break
        if r["seconds"] > args.nested_time_limit or r["peak_rss_kb"] > bench.mem_limit_kb:
            nested_stop = (
                f"k={k} passed a limit: {r['seconds']:.0f} s, {r['peak_rss_kb'] / 1e6:.1f} GB "
                f"(limits {args.nested_time_limit:.0f} s, {args.mem_limit_gb:.0f} GB)"
            )
            break

    # the wide model: recursive vs stepwise (numpy paired: the faster of one BLAS thread and the default)
    wide_numpy = bench.run(
        {"kind": "numpy", "model": "wide", "net": net, "rows": wide_rows, "checkpoints": [wide_iters]},
        env=BLAS_ONE_THREAD,
    )
    wide_cfg = {"kind": "sqlgrad", "model": "wide", "net": net, "rows": wide_rows, "iterations": wide_iters}
    wide = [
        bench.run({**wide_cfg, "strategy": s}, repeat=1 if quick else 3, pair=True)
        for s in ("recursive", "stepwise")
    ]
    # with an L2 penalty the penalty is one chain of 2,368 additions: recorded, expected to fail
    wide_l2 = None if quick else bench.run({**wide_cfg, "net": {**net, "l2": 1e-3}, "strategy": "recursive"})

    wide_ref = wide_numpy["points"][0] if wide_numpy.get("points") else None
    checks = weight_checks([*grid, auto, *nested, *wide], numpy_ref, wide_ref)
    return {
        "settings": {
            "quick": quick,
            "article": {"init": "examples/article/init.json", **ARTICLE, "data_seed": DATA_SEED},
            "wide": {**net, "rows": wide_rows, "iterations": wide_iters, "init_seed": WIDE_SEED},
            "mem_limit_gb": args.mem_limit_gb,
            "nested_time_limit_s": args.nested_time_limit,
            "stepwise_budget_s": args.stepwise_budget,
            "rtol": RTOL,
        },
        "numpy": [
            r for r in bench.runs if r["config"]["kind"] == "numpy" and r["config"]["model"] == "article"
        ],
        "grid": grid,
        "auto": auto,
        "nested": nested,
        "nested_stop": nested_stop,
        "wide_numpy": wide_numpy,
        "wide": wide,
        "wide_l2": wide_l2,
        "checks": checks,
    }


def weight_checks(
    runs: list[Result], numpy_ref: dict[tuple[str, int, int], Result], best_wide: Result | None
) -> Result:
    """Every pair of strategies on the same configuration, and every run against numpy."""
    by_cfg: dict[tuple[str, int, int], list[Result]] = {}
    for r in runs:
        if "weights" in r:
            c = r["config"]
            by_cfg.setdefault((c["model"], c["rows"], c["iterations"]), []).append(r)
    pairs: list[Result] = []
    for (model, rows, its), rs in sorted(by_cfg.items()):
        ref = best_wide if model == "wide" else numpy_ref.get((model, rows, its))
        for i, a in enumerate(rs):
            for b in rs[i + 1 :]:
                d = rel_diff(a["weights"], b["weights"])
                pairs.append(
                    {
                        "model": model,
                        "rows": rows,
                        "iterations": its,
                        "a": a["config"]["strategy"],
                        "b": b["config"]["strategy"],
                        "max_rel_diff": d,
                        "ok": d <= RTOL,
                    }
                )
            if ref is not None:
                d = rel_diff(a["weights"], ref["weights"])
                pairs.append(
                    {
                        "model": model,
                        "rows": rows,
                        "iterations": its,
                        "a": a["config"]["strategy"],
                        "b": "numpy",
                        "max_rel_diff": d,
                        "ok": d <= RTOL,
                    }
                )
    return {"rtol": RTOL, "all_ok": all(p["ok"] for p in pairs), "pairs": pairs}


# --- Markdown summary ---------------------------------------------------------------------------------


def fmt_mb(kb: float | None) -> str:
    return "-" if kb is None else f"{kb / 1e3:,.0f}"


def numpy_per_it(r: Result) -> str:
    ref = r.get("paired_numpy")
    if not ref or "per_iteration" not in ref:
        return "-"
    return f"{ref['per_iteration']:.5f} ({ref['iterations_timed']} it, {ref['blas']})"


def markdown(rep: Result) -> str:
    lines = [
        "",
        "## recursive and stepwise (article network)",
        "",
        "| rows | iterations | strategy | train s | s/iteration | numpy s/iteration | x numpy | train() s | "
        "process s | peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rep["grid"]:
        c = r["config"]
        if "seconds" not in r:
            lines.append(
                f"| {c['rows']:,} | {c['iterations']} | {c['strategy']} | "
                f"{r.get('skipped') or r.get('error')} |||||||"
            )
            continue
        lines.append(
            f"| {c['rows']:,} | {c['iterations']} | {c['strategy']} | {r['seconds']:.3f} | "
            f"{r['seconds'] / c['iterations']:.5f} | {numpy_per_it(r)} | "
            f"{r.get('x_numpy', float('nan')):.2f} | "
            f"{r['train_call_seconds']:.3f} | {r['wall_seconds']:.2f} | {fmt_mb(r['peak_rss_kb'])} |"
        )
    lines += [
        "",
        "full-length numpy runs (the weights reference):",
        "",
        "| rows | iterations | numpy s | numpy peak MB |",
        "|---|---|---|---|",
    ]
    for r in rep["numpy"]:
        for p in r.get("points", []):
            lines.append(
                f"| {r['config']['rows']:,} | {p['iterations']} | {p['seconds']:.3f} | "
                f"{fmt_mb(r['peak_rss_kb'])} |"
            )
    a = rep["auto"]
    lines += [
        "",
        f"auto chose: {a.get('strategy_used')} ({a.get('seconds')} s)",
        "",
        "## nested (article network)",
        "",
        "| k | train s | numpy s | x numpy | process s | peak MB | SQL chars | render s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rep["nested"]:
        k = r["config"]["iterations"]
        if "seconds" not in r:
            lines.append(f"| {k} | {r.get('error')} |||||||")
            continue
        lines.append(
            f"| {k} | {r['seconds']:.3f} | {r.get('paired_numpy', {}).get('seconds', float('nan')):.3f} | "
            f"{r.get('x_numpy', float('nan')):.1f} | "
            f"{r['wall_seconds']:.1f} | {fmt_mb(r['peak_rss_kb'])} | {r['sql_chars']:,} | "
            f"{r['render_seconds']:.2f} |"
        )
    lines += [
        "",
        f"nested stopped: {rep['nested_stop']}",
        "",
        "## wide model",
        "",
        "| strategy | train s | s/iteration | numpy s/iteration | x numpy | peak MB | SQL chars |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rep["wide"]:
        c = r["config"]
        if "seconds" not in r:
            lines.append(f"| {c['strategy']} | {r.get('error')} ||||||")
            continue
        lines.append(
            f"| {c['strategy']} | {r['seconds']:.2f} | {r['seconds'] / c['iterations']:.3f} | "
            f"{numpy_per_it(r)} | {r.get('x_numpy', float('nan')):.1f} | {fmt_mb(r['peak_rss_kb'])} | "
            f"{r['sql_chars']:,} |"
        )
    if rep.get("wide_l2"):
        lines += ["", f"wide model with l2 = 1e-3: {rep['wide_l2'].get('error', 'ran')}"]
    ch = rep["checks"]
    worst = max((p["max_rel_diff"] for p in ch["pairs"]), default=0.0)
    lines += [
        "",
        f"weight checks: {len(ch['pairs'])} pairs, all within {ch['rtol']}: {ch['all_ok']} "
        f"(worst {worst:.2e})",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
