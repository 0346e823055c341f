"""``sqlgrad history``, ``evaluate --plot``, ``--json`` of predict/load/sql, and the progress throughput.

The history tables here are made by the test, with the columns the training writes
(iteration, epoch, loss, val_loss, val_accuracy, seconds) or only some of them.
"""

from __future__ import annotations

import builtins
import csv
import json

import duckdb
import numpy as np
import pytest

from sqlgrad.cli import _Throughput, main
from sqlgrad.engines import connect
from sqlgrad.model import Model
from sqlgrad.plots import confusion_counts, regression_sample

PNG = b"\x89PNG\r\n\x1a\n"


def run(argv, capsys):
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(result, expect, *needles):
    code, _, err = result
    assert code == expect, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sqlgrad: error: "), err
    for n in needles:
        assert n in lines[0]


@pytest.fixture
def run_db(tmp_path):
    path = tmp_path / "runs.db"
    con = duckdb.connect(str(path))
    con.execute(
        'CREATE TABLE "full run_history" (iteration BIGINT, epoch BIGINT, loss DOUBLE, val_loss DOUBLE, '
        "val_accuracy DOUBLE, seconds DOUBLE)"
    )
    con.execute(
        """INSERT INTO "full run_history" SELECT i, i // 4, 1.0 / (i + 1),
        CASE WHEN i % 4 = 0 THEN 1.2 / (i + 1) END, CASE WHEN i % 4 = 0 THEN 0.5 + i / 100 END, i * 0.01
        FROM range(20) t(i)"""
    )
    con.execute("CREATE TABLE short_history (loss DOUBLE, iteration INTEGER)")
    con.execute("INSERT INTO short_history VALUES (0.5, 1), (0.7, 0), ('NaN', 2)")
    con.close()
    return f"duckdb:///{path}"


def test_history_json_text_and_plot(run_db, tmp_path, capsys):
    code, out, err = run(["history", "--db", run_db, "--name", "full run", "--json"], capsys)
    assert code == 0, err
    got = json.loads(out)
    assert got["columns"] == ["iteration", "epoch", "loss", "val_loss", "val_accuracy", "seconds"]
    assert [r["iteration"] for r in got["rows"]] == list(range(20))
    assert got["rows"][3] == {
        "iteration": 3,
        "epoch": 0,
        "loss": 0.25,
        "val_loss": None,
        "val_accuracy": None,
        "seconds": 0.03,
    }
    assert got["rows"][4]["val_accuracy"] == pytest.approx(0.54)

    code, out, err = run(["history", "--db", run_db, "--name", "full run"], capsys)
    assert code == 0, err
    assert "run full run: 20 rows" in out and "val_accuracy" in out and "0.0526316" in out

    png = tmp_path / "h.png"
    code, out, err = run(["history", "--db", run_db, "--name", "full run", "--plot", str(png)], capsys)
    assert code == 0, err
    assert png.read_bytes().startswith(PNG) and f"plot written to {png}" in out


def test_history_tolerates_missing_columns(run_db, tmp_path, capsys):
    code, out, err = run(["history", "--db", run_db, "--name", "short", "--json"], capsys)
    assert code == 0, err
    got = json.loads(out)
    assert got["columns"] == ["iteration", "loss"]
    assert got["rows"] == [
        {"iteration": 0, "loss": 0.7},
        {"iteration": 1, "loss": 0.5},
        {"iteration": 2, "loss": None},
    ]
    png = tmp_path / "s.png"
    assert run(["history", "--db", run_db, "--name", "short", "--plot", str(png)], capsys)[0] == 0
    assert png.read_bytes().startswith(PNG)


def test_history_errors(run_db, tmp_path, capsys):
    one_line(run(["history", "--db", run_db, "--name", "nope"], capsys), 2, "no run 'nope'")
    one_line(run(["history", "--name", "nope"], capsys), 2, "--db")
    bad = tmp_path / "no" / "dir.png"
    one_line(
        run(["history", "--db", run_db, "--name", "short", "--plot", str(bad)], capsys), 2, "cannot write"
    )


def test_plot_without_matplotlib(run_db, monkeypatch, capsys, tmp_path):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    png = str(tmp_path / "x.png")
    one_line(run(["history", "--db", run_db, "--name", "short", "--plot", png], capsys), 2, "sqlgrad[plot]")
    one_line(run(["evaluate", "m.json", "data.csv", "--plot", png], capsys), 2, "sqlgrad[plot]")
    # without --plot, nothing needs matplotlib
    assert run(["history", "--db", run_db, "--name", "short", "--json"], capsys)[0] == 0


@pytest.fixture
def points(tmp_path):
    rng = np.random.default_rng(9)
    X = rng.normal(size=(300, 2))
    path = tmp_path / "p.csv"
    with open(path, "w") as fh:
        fh.write("a,b,label,value\n")
        for (a, b), lab in zip(X.tolist(), np.where(X[:, 0] > X[:, 1], "up", "down"), strict=True):
            fh.write(f"{a!r},{b!r},{lab},{2 * a - b!r}\n")
    return str(path)


def test_evaluate_plot_classifier_counts_in_sql(points, tmp_path, capsys):
    m = str(tmp_path / "c.json")
    argv = ["train", points, "--target", "label", "--exclude", "value", "--hidden", "3", "--iterations", "20"]
    assert run([*argv, "-o", m, "--quiet"], capsys)[0] == 0
    png = tmp_path / "cm.png"
    code, out, err = run(["evaluate", m, points, "--plot", str(png), "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["plot"] == str(png) and png.read_bytes().startswith(PNG)
    model = Model.load(m)
    with connect() as eng:
        labels, counts = confusion_counts(eng, model, points)
    code, out, _ = run(["predict", m, points], capsys)
    rows = list(csv.DictReader(out.splitlines()))
    want = [
        [sum(r["label"] == a and r["predicted_label"] == p for r in rows) for p in labels] for a in labels
    ]
    assert labels == ["down", "up"] and counts == want and sum(map(sum, counts)) == 300
    accuracy = json.loads(run(["evaluate", m, points, "--json"], capsys)[1])["accuracy"]
    assert (counts[0][0] + counts[1][1]) / 300 == pytest.approx(accuracy, abs=1e-12)


def test_evaluate_plot_regression_sampled_in_sql(points, tmp_path, capsys):
    m = str(tmp_path / "r.json")
    argv = ["train", points, "--target", "value", "--exclude", "label", "--hidden", "3", "--iterations", "20"]
    assert run([*argv, "-o", m, "--quiet"], capsys)[0] == 0
    png = tmp_path / "r.png"
    code, out, err = run(["evaluate", m, points, "--plot", str(png)], capsys)
    assert code == 0, err
    assert "plot" in out and png.read_bytes().startswith(PNG)
    model = Model.load(m)
    with connect() as eng:
        actual, predicted, n = regression_sample(eng, model, points)
        assert n == 300 and len(actual) == len(predicted) == 300
        actual, predicted, n = regression_sample(eng, model, points, limit=50)
        assert n == 300 and len(actual) == 50
    code, out, _ = run(["predict", m, points, "--json"], capsys)
    pairs = {(r["value"], r["predicted_value"]) for r in map(json.loads, out.splitlines())}
    assert set(zip(actual, predicted, strict=True)) <= pairs


def test_json_outputs(points, tmp_path, capsys):
    m = str(tmp_path / "c.json")
    argv = ["train", points, "--target", "label", "--exclude", "value", "--iterations", "3"]
    assert run([*argv, "-o", m, "--quiet"], capsys)[0] == 0
    code, out, _ = run(["predict", m, points, "--json"], capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 300
    assert list(lines[0]) == [
        "a",
        "b",
        "label",
        "value",
        "predicted_label",
        "probability_down",
        "probability_up",
    ]
    jl = tmp_path / "p.jsonl"
    assert run(["predict", m, points, "--json", "-o", str(jl)], capsys)[0] == 0
    assert [json.loads(line) for line in jl.read_text().splitlines()] == lines

    db = f"duckdb:///{tmp_path / 'j.db'}"
    code, out, _ = run(["load", points, "--db", db, "--table", "pts", "--json"], capsys)
    assert code == 0 and json.loads(out) == {"table": "pts", "rows": 300}
    code, out, _ = run(["predict", m, "pts", "--db", db, "--view", "scored", "--json"], capsys)
    assert code == 0 and json.loads(out)["view"] == "scored" and "CREATE VIEW" in json.loads(out)["sql"]
    code, out, _ = run(["sql", m, "--json", "--dialect", "trino"], capsys)
    got = json.loads(out)
    assert code == 0 and got["dialect"] == "trino" and got["statements"][0].startswith("SELECT")
    code, out, _ = run(["sql", m, "--json", "--train", "--strategy", "stepwise"], capsys)
    assert code == 0 and len(json.loads(out)["statements"]) > 2


def test_progress_throughput(monkeypatch):
    import time

    clock = iter([100.0, 102.0, 104.0])
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    meter = _Throughput(None)
    assert meter.text(0) == ""
    assert meter.text(10) == "5.0 it/s"
    meter.rows_per_update = 250_000
    assert meter.text(20) == "5.0 it/s, 1.25M rows/s"
