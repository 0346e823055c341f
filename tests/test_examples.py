"""The examples under ``examples/`` run end to end in ``--quick`` mode, write sane results, and produce
exactly the CI-size results and figures that ``docs/examples.md`` shows.

Each ``run.py`` trains in SQL (DuckDB), evaluates on its held-out split, trains scikit-learn's MLP beside
it, and writes ``results.json`` and a figure. The five scripts run at the same time (one process each,
started once for the module) so the whole file takes about as long as the slowest of them.

The docs' CI-size section is checked against these runs through ``docs/figures/examples/quick.json``:

* each run's held-out metric, iterations and final training loss (both sides) and the data of its figure
  (``results["plot"]``: every curve, matrix, point and title drawn) equal the committed entry, floats to a
  relative 1e-6 (sqlgrad and scikit-learn are deterministic with the fixed seed: runs agree to ~1e-15);
* the table and figure links between the markers in ``docs/examples.md`` are what ``quick.json`` renders;
* each committed PNG carries (text chunk ``sqlgrad-figure-sha256``) the SHA-256 of the plotted data in
  ``quick.json``. PNG bytes are not compared: they depend on the matplotlib and FreeType versions.

After an intended change, regenerate ``quick.json``, the doc's table and the PNGs from the runs with::

    SQLGRAD_UPDATE_EXAMPLES=1 python -m pytest tests/test_examples.py
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import platform
import shutil
import struct
import subprocess
import sys
import time

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
DOC = os.path.join(ROOT, "docs", "examples.md")
FIGURES = os.path.join(ROOT, "docs", "figures", "examples")
QUICK = os.path.join(FIGURES, "quick.json")
TIMEOUT = 600
UPDATE = os.environ.get("SQLGRAD_UPDATE_EXAMPLES", "") not in ("", "0")
REGENERATE = "SQLGRAD_UPDATE_EXAMPLES=1 python -m pytest tests/test_examples.py"
RTOL = 1e-6
BEGIN = "<!-- BEGIN CI-size results: from docs/figures/examples/quick.json by tests/test_examples.py -->"
END = "<!-- END CI-size results -->"

# example: (task, the metric on the held-out set, its floor in --quick mode)
EXPECTED = {
    "iris": ("classification", "accuracy", 0.8),
    "wine": ("classification", "accuracy", 0.8),
    "breast_cancer": ("classification", "accuracy", 0.85),
    "digits": ("classification", "accuracy", 0.5),
    "diabetes": ("regression", "r2", 0.2),
}

pytestmark = pytest.mark.slow

_spec = importlib.util.spec_from_file_location("examples_common", os.path.join(EXAMPLES, "_common.py"))
common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(common)


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


def load_results(name: str, runs: dict[str, tuple[str, subprocess.CompletedProcess]]) -> dict:
    out, result = runs[name]
    assert result.returncode == 0, f"{name}/run.py failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    with open(os.path.join(out, "results.json"), encoding="utf-8") as fh:
        return json.load(fh)


def png_text(path: str) -> dict[str, str]:
    """The ``tEXt`` chunks of a PNG file (keyword -> text)."""
    with open(path, "rb") as fh:
        data = fh.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    texts, at = {}, 8
    while at + 8 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            texts[key.decode("latin-1")] = value.decode("latin-1")
        at += 12 + length
    return texts


# --- what the docs show of a run ------------------------------------------------------------------------


def quick_entry(results: dict) -> dict:
    """What ``quick.json`` keeps of one run: no times (noise), the plotted data and its digest."""
    metric = EXPECTED[results["example"]][1]
    settings = results["settings"]
    entry = {
        "architecture": results["architecture"],
        "rows": {"train": results["data"]["train_rows"], "test": results["data"]["test_rows"]},
        "settings": {k: settings[k] for k in ("lr", "iterations", "batch", "head") if k in settings},
        "metric": metric,
    }
    for side in ("sqlgrad", "sklearn"):
        keys = (metric, "iterations", "updates", "final_loss")
        entry[side] = {k: results[side][k] for k in keys if k in results[side]}
    entry["plot"] = results["plot"]
    entry["plot_sha256"] = common.digest(results["plot"])
    return entry


def software() -> dict[str, str]:
    import duckdb
    import matplotlib
    import numpy
    import sklearn
    import sqlglot

    return {
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "scikit-learn": sklearn.__version__,
        "sqlglot": sqlglot.__version__,
        "numpy": numpy.__version__,
        "matplotlib": matplotlib.__version__,
    }


def render(quick: dict) -> str:
    """The doc's block between :data:`BEGIN` and :data:`END`: the table and the figures."""
    lines = [
        BEGIN,
        "",
        "| example | rows (train / test) | network | settings | sqlgrad | scikit-learn "
        "| iterations (sqlgrad / scikit-learn) | final training loss: sqlgrad | scikit-learn |",
        "|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, e in quick["examples"].items():
        s, sg, sk = e["settings"], e["sqlgrad"], e["sklearn"]
        network = e["architecture"] + (f" ({s['head']})" if "head" in s else "")
        if s["batch"] == "full":
            steps = f"Adam {s['lr']}, {s['iterations']} it."
            iterations = f"{sg['iterations']} / {sk['iterations']}"
        else:
            steps = f"Adam {s['lr']}, batches of {s['batch']}, {s['iterations']} epochs"
            iterations = f"{sg['iterations']} / {sk['iterations']} epochs ({sg['updates']} updates in SQL)"
        if e["metric"] == "accuracy":
            scores = [f"accuracy {side['accuracy']:.3f}" for side in (sg, sk)]
        else:
            scores = [f"R² {side['r2']:.3f}" for side in (sg, sk)]
        lines.append(
            f"| [{name}](../examples/{name}/run.py) | {e['rows']['train']:,} / {e['rows']['test']:,} "
            f"| {network} | {steps} | {scores[0]} | {scores[1]} | {iterations} "
            f"| {sg['final_loss']:.6g} | {sk['final_loss']:.6g} |"
        )
    versions = ", ".join(f"{k} {v}" for k, v in quick["software"].items())
    lines += ["", f"Recorded with {versions}.", ""]
    for name, e in quick["examples"].items():
        what = "confusion matrices" if e["metric"] == "accuracy" else "predicted against true progression"
        lines += [
            f"### {name} (`--quick`)",
            "",
            f"![{name}, CI size (--quick): loss curves and {what}](figures/examples/{name}.png)",
            "",
        ]
    lines.append(END)
    return "\n".join(lines)


def doc_block(text: str) -> str:
    assert text.count(BEGIN) == 1 and text.count(END) == 1, f"{DOC} needs one {BEGIN!r} ... {END!r} block"
    start = text.index(BEGIN)
    return text[start : text.index(END, start) + len(END)]


def write_committed(runs: dict[str, tuple[str, subprocess.CompletedProcess]]) -> None:
    """``SQLGRAD_UPDATE_EXAMPLES=1``: quick.json, the PNGs and the doc's block from these runs."""
    examples = {}
    for name in EXPECTED:
        results = load_results(name, runs)
        examples[name] = quick_entry(results)
        os.makedirs(FIGURES, exist_ok=True)
        shutil.copyfile(os.path.join(runs[name][0], results["figure"]), os.path.join(FIGURES, f"{name}.png"))
    quick = {
        "generated_by": REGENERATE,
        "command": "python examples/<name>/run.py --quick --seed 0",
        "software": software(),
        "examples": examples,
    }
    with open(QUICK, "w", encoding="utf-8") as fh:
        json.dump(quick, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    with open(DOC, encoding="utf-8") as fh:
        text = fh.read()
    with open(DOC, "w", encoding="utf-8") as fh:
        fh.write(text.replace(doc_block(text), render(quick)))


@pytest.fixture(scope="module")
def committed(runs: dict[str, tuple[str, subprocess.CompletedProcess]]) -> dict:
    """The committed quick.json (rewritten first from the runs under ``SQLGRAD_UPDATE_EXAMPLES=1``)."""
    if UPDATE:
        write_committed(runs)
    if not os.path.exists(QUICK):
        pytest.fail(f"{QUICK} is missing: run {REGENERATE}")
    with open(QUICK, encoding="utf-8") as fh:
        return json.load(fh)


def differences(got, want, path: str = "") -> list[str]:
    """Where ``got`` and ``want`` differ: floats beyond a relative :data:`RTOL`, anything else at all."""
    if isinstance(want, dict) and isinstance(got, dict):
        if set(got) != set(want):
            return [f"{path}: keys {sorted(got)} != {sorted(want)}"]
        return [d for k in want for d in differences(got[k], want[k], f"{path}.{k}")]
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{path}: {len(got)} items != {len(want)}"]
        return [
            d
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for d in differences(g, w, f"{path}[{i}]")
        ]
    if isinstance(want, float) and isinstance(got, int | float) and not isinstance(got, bool):
        return (
            [] if math.isclose(got, want, rel_tol=RTOL, abs_tol=1e-12) else [f"{path}: {got!r} != {want!r}"]
        )
    return [] if got == want and type(got) is type(want) else [f"{path}: {got!r} != {want!r}"]


# --- the tests -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(EXPECTED))
def test_example_quick(name: str, runs: dict[str, tuple[str, subprocess.CompletedProcess]]) -> None:
    out = runs[name][0]
    results = load_results(name, runs)
    task, metric, floor = EXPECTED[name]
    assert results["example"] == name
    assert results["task"] == task
    assert results["quick"] is True
    for key in ("seed", "data", "architecture", "settings", "sqlgrad", "sklearn", "figure", "plot"):
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
    # the figure was drawn from results["plot"], which results.json records
    assert png_text(figure).get(common.FIGURE_KEY) == common.digest(results["plot"])


@pytest.mark.parametrize("name", list(EXPECTED))
def test_example_quick_is_what_the_docs_show(
    name: str, runs: dict[str, tuple[str, subprocess.CompletedProcess]], committed: dict
) -> None:
    """This run's metrics, iterations, final losses and plotted data equal the committed quick.json."""
    got = quick_entry(load_results(name, runs))
    assert name in committed["examples"], f"{name} is not in {QUICK}: run {REGENERATE}"
    want = committed["examples"][name]
    got.pop("plot_sha256")  # a digest of floats: compared through the plotted data, to RTOL
    wrong = differences(got, {k: v for k, v in want.items() if k != "plot_sha256"})
    assert not wrong, (
        f"the --quick run of {name} differs from {os.path.relpath(QUICK, ROOT)} (recorded with "
        f"{committed['software']}, now {software()}):\n  " + "\n  ".join(wrong[:20]) + "\n"
        f"if the change is intended, run {REGENERATE} and commit docs/figures/examples/ and docs/examples.md"
    )
    # the committed figure was drawn from the committed data
    assert want["plot_sha256"] == common.digest(want["plot"])
    png = os.path.join(FIGURES, f"{name}.png")
    assert os.path.exists(png), f"{png} is missing: run {REGENERATE}"
    assert png_text(png).get(common.FIGURE_KEY) == want["plot_sha256"], (
        f"{png} is not quick.json's: {REGENERATE}"
    )


def test_docs_show_the_committed_quick_results(committed: dict) -> None:
    """docs/examples.md's CI-size block (table, software, figures) is what quick.json renders."""
    assert list(committed["examples"]) == list(EXPECTED)
    with open(DOC, encoding="utf-8") as fh:
        block = doc_block(fh.read())
    assert block == render(committed), f"the CI-size block of {DOC} is not quick.json's: run {REGENERATE}"
    for name in EXPECTED:
        assert f"](figures/examples/{name}.png)" in block
