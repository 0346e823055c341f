"""The examples under ``examples/`` run end to end in ``--quick`` mode and write sane results.

Each ``run.py`` trains in SQL (DuckDB), evaluates on its held-out split, trains scikit-learn's MLP beside
it, and writes ``results.json`` and a figure. The five scripts run at the same time (one process each,
started once for the module) so the whole file takes about as long as the slowest of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
TIMEOUT = 600

# example: (task, the metric on the held-out set, its floor in --quick mode)
EXPECTED = {
    "iris": ("classification", "accuracy", 0.8),
    "wine": ("classification", "accuracy", 0.8),
    "breast_cancer": ("classification", "accuracy", 0.85),
    "digits": ("classification", "accuracy", 0.5),
    "diabetes": ("regression", "r2", 0.2),
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, subprocess.CompletedProcess]]:
    """Run every example with ``--quick`` into its own directory, all at once; name -> (dir, result)."""
    base = tmp_path_factory.mktemp("examples")
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}
    procs = {}
    for name in EXPECTED:
        out = str(base / name)
        cmd = [sys.executable, os.path.join(EXAMPLES, name, "run.py"), "--quick", "--out", out]
        procs[name] = (
            out,
            subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(base), env=env
            ),
        )
    deadline = time.monotonic() + TIMEOUT
    done = {}
    for name, (out, proc) in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        done[name] = (out, subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    return done


@pytest.mark.parametrize("name", list(EXPECTED))
def test_example_quick(name: str, runs: dict[str, tuple[str, subprocess.CompletedProcess]]) -> None:
    out, result = runs[name]
    assert result.returncode == 0, f"{name}/run.py failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    with open(os.path.join(out, "results.json"), encoding="utf-8") as fh:
        results = json.load(fh)
    task, metric, floor = EXPECTED[name]
    assert results["example"] == name
    assert results["task"] == task
    assert results["quick"] is True
    for key in ("seed", "data", "architecture", "settings", "sqlgrad", "sklearn", "figure"):
        assert key in results, key
    sizes = [int(v) for v in results["architecture"].split("-")]
    assert sizes[0] == results["data"]["features"] and len(sizes) >= 3
    rows = results["data"]
    assert rows["test_rows"] > 0 and rows["train_rows"] > 2 * rows["test_rows"]
    sg, sk = results["sqlgrad"], results["sklearn"]
    for side in (sg, sk):
        for key in (metric, "iterations", "seconds", "final_loss"):
            assert key in side, key
        assert side["seconds"] >= 0
        assert side["iterations"] == results["settings"]["iterations"]
    # trained in SQL, to a useful model; the scikit-learn reference too
    assert sg["engine"] == "duckdb"
    assert sg[metric] >= floor, (name, metric, sg[metric])
    assert sk[metric] >= floor, (name, metric, sk[metric])
    if task == "classification":
        assert sg[metric] <= 1.0
        cm = results["confusion_matrix"]["sqlgrad"]
        assert sum(map(sum, cm)) == results["data"]["test_rows"]
        assert sum(cm[i][i] for i in range(len(cm))) == round(sg["accuracy"] * results["data"]["test_rows"])
    figure = os.path.join(out, results["figure"])
    assert os.path.getsize(figure) > 10_000
    with open(figure, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
