"""Time per iteration of the long plan (parameters as rows) against the one-column-per-parameter plans.

Run from the repository root (sqlgrad installed)::

    python benchmarks/long.py duckdb:// sqlite:// postgresql://postgres@127.0.0.1:5432/test \\
        --rows 1000 --iterations 5

The model is the wide one of ``docs/strategies.md``: 64 features, 32 ReLU, 10-class softmax (2,410
parameters), gradient descent (lr 0.1; ``--optimizer adam`` uses lr 0.01), no penalty, He/Glorot weights
from seed 7, data from ``numpy.random.default_rng(11)`` (Gaussian features, labels from a random linear
map). For every engine URL it runs the long plan, and the wide plans (``recursive``, ``stepwise``) where
they fit the engine's column limits, straight through :meth:`Plan.run` on a prepared table ``x_0..x_63,
y`` (no data preparation, no final evaluation). Per iteration: for plans that report each update (long,
stepwise) the median time between two reports (one iteration's statements and its loss read), else the
run's time divided by the iterations; ``setup`` is the time before the first report (long: numbering the
rows, turning them long, filling the parameter table). A numpy loop of the same training is timed in the
same run, and every result is checked against it (relative 1e-9).

``--sweep`` measures where ``auto`` should switch from the wide form to ``long`` (the crossover recorded
as ``Capabilities.long_from_params``): for the article's 2-2-2 network (12 parameters) and networks of
about 50, 200, 600, 1,200 and 2,410 parameters (:data:`SWEEP`), each of gradient descent and Adam, and
each ``--rows`` value, it times a whole run of ``--iterations`` updates (setup or planning included:
what a user waits for) of ``long`` and of the wide plan ``auto`` would otherwise take (``recursive``
where the engine has it, else ``stepwise``), each in a fresh process with ``--timeout`` seconds and an
address-space limit of ``--memory-gb``::

    python benchmarks/long.py duckdb:// --sweep --rows 1000,20000 --iterations 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import reference as R
from sqlgrad.engines import connect
from sqlgrad.optim import make_optimizer
from sqlgrad.plans import PLANS, PlanInput, TrainingProgram, width_problem
from sqlgrad.spec import build_spec, init_weights

SWEEP = {
    12: (2, 2, 2),
    51: (4, 6, 3),
    212: (8, 16, 4),
    608: (16, 24, 8),
    1238: (32, 30, 8),
    2410: (64, 32, 10),
}
"""Parameter count -> (features, hidden ReLU units, classes) of the sweep's networks (12: the article's
2-2-2)."""


def data(rows: int, d: int = 64, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    X = rng.normal(size=(rows, d))
    y = np.argmax(X @ rng.normal(size=(d, classes)) + 0.5 * rng.normal(size=(rows, classes)), axis=1)
    return X, y


def sweep_one(url: str, strategy: str, params: int, optimizer: str, rows: int, iterations: int) -> dict:
    """One whole run (setup, the updates, reading the weights back), timed; checked against numpy."""
    d, hidden, classes = SWEEP[params]
    X, y = data(rows, d, classes)
    spec = build_spec(d, [hidden], "relu", "softmax", classes)
    assert spec.n_parameters == params
    init = init_weights(spec, 7)
    lr = 0.01 if optimizer == "adam" else 0.1
    engine = connect(url)
    name = f"bench_sweep_{rows}_{params}"
    try:
        engine.drop_table(name)
        cols = [(f"x_{i}", "float") for i in range(d)] + [("y", "integer")]
        engine.create_table(name, cols, [(*map(float, r), int(t)) for r, t in zip(X, y, strict=True)])
        program = TrainingProgram(spec, make_optimizer(optimizer, lr), engine.capabilities)
        problem = width_problem(strategy, program, engine.capabilities, iterations)
        if problem:
            return {"refused": problem}
        inp = PlanInput(program, name, init, iterations, f"sqlgrad_sweep_{strategy}")
        start = time.perf_counter()
        result = PLANS[strategy].run(engine, inp)
        total = time.perf_counter() - start
    finally:
        engine.drop_table(name)
        engine.close()
    want, _ = R.train(init, ["relu"], "softmax", X, y.astype(float), lr, iterations, optimizer=optimizer)
    worst = max(
        float(np.max(np.abs(g - w) / np.maximum(np.abs(w), 1e-3 * np.max(np.abs(w)))))
        for (gw, gb), (ww, wb) in zip(result.weights, want, strict=True)
        for g, w in ((gw, ww), (gb, wb))
    )
    return {"total_s": total, "max_rel_diff": worst}


def sweep(
    urls: list[str],
    rows: list[int],
    iterations: int,
    timeout: float,
    memory_gb: float,
    optimizers: tuple[str, ...] = ("gd", "adam"),
    sizes: tuple[int, ...] = tuple(SWEEP),
) -> None:
    import json
    import resource
    import subprocess

    def limit() -> None:
        cap = int(memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    print("| engine | rows | optimizer | parameters | wide plan | wide s | long s | wide / long |")
    print("|---|---:|---|---:|---|---:|---:|---:|")
    for url in urls:
        caps = connect(url).capabilities
        wide = "recursive" if caps.recursive_step else "stepwise"
        for n in rows:
            for optimizer in optimizers:
                for params in sizes:
                    got = {}
                    for strategy in (wide, "long"):
                        code = (
                            "import json, sys; sys.path.insert(0, 'benchmarks'); import long as L; "
                            f"print(json.dumps(L.sweep_one({url!r}, {strategy!r}, {params}, {optimizer!r}, "
                            f"{n}, {iterations})))"
                        )
                        try:
                            out = subprocess.run(
                                [sys.executable, "-c", code],
                                capture_output=True,
                                text=True,
                                timeout=timeout,
                                preexec_fn=limit,
                            )
                            if out.returncode != 0:
                                last = (out.stderr.strip().splitlines() or ["?"])[-1]
                                got[strategy] = {"failed": last[:80]}
                            else:
                                got[strategy] = json.loads(out.stdout.strip().splitlines()[-1])
                        except subprocess.TimeoutExpired:
                            got[strategy] = {"failed": f"> {timeout:.0f} s"}
                        if "max_rel_diff" in got[strategy] and got[strategy]["max_rel_diff"] > 1e-9:
                            got[strategy]["failed"] = (
                                f"differs from numpy: {got[strategy]['max_rel_diff']:.1e}"
                            )

                    def cell(r: dict) -> str:
                        if "total_s" in r and "failed" not in r:
                            return f"{r['total_s']:.2f}"
                        return r.get("failed") or ("refused" if "refused" in r else "?")

                    w, lg = got[wide], got["long"]
                    ratio = ""
                    if "total_s" in w and "total_s" in lg and "failed" not in w and "failed" not in lg:
                        ratio = f"{w['total_s'] / lg['total_s']:.2f}"
                    cells = [url, n, optimizer, params, wide, cell(w), cell(lg), ratio]
                    print("| " + " | ".join(map(str, cells)) + " |", flush=True)


def measure(
    url: str,
    rows: int,
    iterations: int,
    optimizer: str = "gd",
    strategies: tuple[str, ...] = ("long", "recursive", "stepwise"),
) -> list[dict]:
    X, y = data(rows)
    spec = build_spec(64, [32], "relu", "softmax", 10)
    init = init_weights(spec, 7)
    t0 = time.perf_counter()
    lr = 0.01 if optimizer == "adam" else 0.1
    want, _ = R.train(init, ["relu"], "softmax", X, y.astype(float), lr, iterations, optimizer=optimizer)
    numpy_s = (time.perf_counter() - t0) / iterations
    engine = connect(url)
    name = f"bench_long_{rows}"
    out = []
    try:
        engine.drop_table(name)
        cols = [(f"x_{i}", "float") for i in range(64)] + [("y", "integer")]
        engine.create_table(name, cols, [(*map(float, r), int(t)) for r, t in zip(X, y, strict=True)])
        program = TrainingProgram(spec, make_optimizer(optimizer, lr), engine.capabilities)
        for strategy in strategies:
            caps = engine.capabilities
            if strategy == "recursive" and not caps.recursive_step:
                continue
            problem = width_problem(strategy, program, caps, iterations)
            if problem:
                out.append({"engine": url, "strategy": strategy, "refused": problem})
                continue
            stamps: list[float] = []
            inp = PlanInput(program, name, init, iterations, f"sqlgrad_bench_{strategy}")
            start = time.perf_counter()
            result = PLANS[strategy].run(engine, inp, lambda k, loss, s=stamps: s.append(time.perf_counter()))
            total = time.perf_counter() - start
            worst = max(
                float(np.max(np.abs(g - w) / np.maximum(np.abs(w), 1e-3 * np.max(np.abs(w)))))
                for (gw, gb), (ww, wb) in zip(result.weights, want, strict=True)
                for g, w in ((gw, ww), (gb, wb))
            )
            per = statistics.median(np.diff(stamps)) if len(stamps) > 2 else total / iterations
            out.append(
                {
                    "engine": url,
                    "strategy": strategy,
                    "s_per_iteration": per,
                    "setup_s": (stamps[0] - start - per) if len(stamps) > 2 else None,
                    "total_s": total,
                    "x_numpy": per / numpy_s,
                    "max_rel_diff": worst,
                }
            )
    finally:
        engine.drop_table(name)
        engine.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("urls", nargs="+")
    ap.add_argument("--rows", default="1000", help="row count (comma-separated list with --sweep)")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument(
        "--optimizer",
        default="gd",
        help="gd, momentum, nesterov or adam (--sweep: a comma list; default gd,adam)",
    )
    ap.add_argument("--strategies", default="long,recursive,stepwise")
    ap.add_argument("--sweep", action="store_true", help="wide against long over parameter counts")
    ap.add_argument("--timeout", type=float, default=180.0, help="--sweep: seconds per run")
    ap.add_argument("--memory-gb", type=float, default=8.0, help="--sweep: address space per run")
    ap.add_argument("--params", default=",".join(map(str, SWEEP)), help="--sweep: networks (keys of SWEEP)")
    args = ap.parse_args()
    if args.sweep:
        rows = [int(r) for r in args.rows.split(",")]
        sizes = tuple(int(p) for p in args.params.split(","))
        optimizers = tuple(args.optimizer.split(",")) if args.optimizer != "gd" else ("gd", "adam")
        sweep(args.urls, rows, args.iterations, args.timeout, args.memory_gb, optimizers, sizes)
        return
    args.rows = int(args.rows)
    print("| engine | strategy | s / iteration | setup s | x numpy | max rel. diff to numpy |")
    print("|---|---|---:|---:|---:|---:|")
    for url in args.urls:
        for r in measure(url, args.rows, args.iterations, args.optimizer, tuple(args.strategies.split(","))):
            if "refused" in r:
                print(f"| {r['engine']} | {r['strategy']} | refused: {r['refused']} | | | |")
                continue
            setup = f"{r['setup_s']:.2f}" if r["setup_s"] is not None else ""
            print(
                f"| {r['engine']} | {r['strategy']} | {r['s_per_iteration']:.3f} | {setup} | "
                f"{r['x_numpy']:.0f} | {r['max_rel_diff']:.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
