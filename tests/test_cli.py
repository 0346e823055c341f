"""The command line: train, predict, evaluate and sql, and one clear line for every user error."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys

import duckdb
import numpy as np
import pytest
import sqlglot

import reference as R
from sqlgrad.cli import main
from sqlgrad.model import Model


@pytest.fixture
def points_csv(tmp_path):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 3))
    y = np.where(X[:, 0] - 0.5 * X[:, 2] > 0, "yes", "no")
    path = tmp_path / "points.csv"
    with open(path, "w") as fh:
        fh.write("a,b,c,label\n")
        for row, lab in zip(X.tolist(), y.tolist(), strict=True):
            fh.write(",".join(repr(v) for v in row) + f",{lab}\n")
    return str(path), X, y


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_predict_evaluate_roundtrip(points_csv, tmp_path, capsys):
    path, X, y = points_csv
    model_path = str(tmp_path / "m.json")
    code, out, err = run(
        [
            "train",
            path,
            "--target",
            "label",
            "--hidden",
            "4",
            "--lr",
            "0.5",
            "--iterations",
            "40",
            "-o",
            model_path,
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    model = Model.load(model_path)
    assert model.classes == ["no", "yes"] and model.features == ["a", "b", "c"]
    assert [h["iteration"] for h in model.history] == list(range(41))

    out_csv = str(tmp_path / "scored.csv")
    code, out, err = run(["predict", model_path, path, "-o", out_csv], capsys)
    assert code == 0, err
    with open(out_csv) as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["a", "b", "c", "label", "predicted_label", "probability_no", "probability_yes"]
    probs = R.predict_scores(model.weights, model.activations, model.head, X)
    got = np.array([[float(r["probability_no"]), float(r["probability_yes"])] for r in rows])
    np.testing.assert_allclose(got, probs, rtol=1e-9)
    want_labels = np.array(model.classes)[np.argmax(probs, axis=1)]
    assert [r["predicted_label"] for r in rows] == want_labels.tolist()

    code, out, err = run(["evaluate", model_path, path, "--json"], capsys)
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["n"] == 300
    assert metrics["accuracy"] == pytest.approx(np.mean(want_labels == y), abs=1e-12)
    yi = (y == "yes").astype(int)
    assert metrics["log_loss"] == pytest.approx(-np.mean(np.log(probs[np.arange(300), yi])), rel=1e-9)


def test_summary_line_and_json(points_csv, tmp_path, capsys):
    path, _, _ = points_csv
    code, out, err = run(
        ["train", path, "--target", "label", "--iterations", "5", "-o", str(tmp_path / "m.json"), "--json"],
        capsys,
    )
    assert code == 0, err
    info = json.loads(out)
    assert info["strategy"] == "recursive" and info["iterations"] == 5 and info["rows"] == 300
    code, out, err = run(
        [
            "train",
            path,
            "--target",
            "label",
            "--iterations",
            "5",
            "--strategy",
            "stepwise",
            "-o",
            str(tmp_path / "m.json"),
        ],
        capsys,
    )
    assert code == 0
    assert "trained 3-16-2 network on 300 rows: 5 iterations (stepwise)" in out
    assert "training accuracy" in out
    # the summary table, on stderr
    assert "training summary" in err and "duckdb / stepwise" in err and "5 (gd, lr 0.1)" in err
    accuracy = json.loads((tmp_path / "m.json").read_text())["training"]["metrics"]["accuracy"]
    assert f"accuracy {accuracy:.4f}" in err


def test_sigmoid_head_and_regression(points_csv, tmp_path, capsys):
    path, X, _ = points_csv
    m = str(tmp_path / "m.json")
    assert (
        run(
            [
                "train",
                path,
                "--target",
                "label",
                "--head",
                "sigmoid",
                "--iterations",
                "3",
                "-o",
                m,
                "--quiet",
            ],
            capsys,
        )[0]
        == 0
    )
    model = Model.load(m)
    assert model.head == "sigmoid" and model.spec.n_outputs == 1
    code, out, _ = run(["predict", m, path], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    p = R.predict_scores(model.weights, model.activations, "sigmoid", X)
    np.testing.assert_allclose([float(r["probability_yes"]) for r in rows], p, rtol=1e-9)
    assert {r["predicted_label"] for r in rows} <= {"yes", "no"}

    assert (
        run(
            ["train", path, "--target", "a", "--features", "b,c", "--iterations", "3", "-o", m, "--quiet"],
            capsys,
        )[0]
        == 0
    )
    model = Model.load(m)
    assert model.task == "regression" and model.head == "identity"
    code, out, _ = run(["evaluate", m, path, "--json"], capsys)
    assert code == 0
    metrics = json.loads(out)
    pred = R.predict_scores(model.weights, model.activations, "identity", X[:, 1:])
    assert metrics["mse"] == pytest.approx(np.mean((pred - X[:, 0]) ** 2), rel=1e-9)
    assert metrics["r2"] == pytest.approx(
        1 - np.sum((pred - X[:, 0]) ** 2) / np.sum((X[:, 0] - X[:, 0].mean()) ** 2), rel=1e-9
    )


def test_train_from_table_in_duckdb_file(tmp_path, capsys):
    db = tmp_path / "user.db"
    con = duckdb.connect(str(db))
    con.execute(
        'CREATE TABLE "My Points" AS SELECT i::DOUBLE / 50 - 1 AS "x 1", (i % 7)::DOUBLE AS "select", '
        "i >= 50 AS flag FROM range(100) t(i)"
    )
    before = con.execute('SELECT * FROM "My Points" ORDER BY ALL').fetchall()
    con.close()
    url = f"duckdb:///{db}"
    m = str(tmp_path / "m.json")
    code, out, err = run(
        [
            "train",
            "My Points",
            "--db",
            url,
            "--target",
            "flag",
            "--iterations",
            "20",
            "--lr",
            "1",
            "-o",
            m,
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    assert Model.load(m).classes == [False, True]
    code, out, err = run(["predict", m, "My Points", "--db", url], capsys)
    assert code == 0, err
    assert out.splitlines()[0] == "x 1,select,flag,predicted_flag,probability_False,probability_True"
    con = duckdb.connect(str(db))
    assert con.execute('SELECT * FROM "My Points" ORDER BY ALL').fetchall() == before
    assert [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()] == ["My Points"]
    con.close()


@pytest.mark.parametrize("dialect", ["duckdb", "postgres", "bigquery", "sqlite", "mysql", "spark", "trino"])
@pytest.mark.parametrize(
    "what",
    [
        [],
        ["--train", "--strategy", "recursive"],
        ["--train", "--strategy", "stepwise"],
        ["--train", "--strategy", "nested", "--iterations", "2"],
    ],
)
def test_sql_prints_parseable_sql(points_csv, tmp_path, capsys, dialect, what):
    path, _, _ = points_csv
    m = str(tmp_path / "m.json")
    assert (
        run(
            ["train", path, "--target", "label", "--hidden", "3", "--iterations", "2", "-o", m, "--quiet"],
            capsys,
        )[0]
        == 0
    )
    code, out, err = run(["sql", m, "--dialect", dialect, *what], capsys)
    if "recursive" in what and dialect in ("bigquery", "sqlite", "mysql", "trino"):
        # the SQL printed is the SQL the engine runs: these refuse an aggregate in a recursive term
        _one_line_error(code, out, err, 2, f"{dialect} cannot run the recursive plan", "stepwise")
        return
    assert code == 0, err
    statements = [s for s in sqlglot.parse(out, read=dialect) if s is not None]
    assert statements
    assert "LOG(" not in out.upper().replace("CATALOG(", "")  # natural log is always LN
    if dialect == "duckdb" and not what:
        con = duckdb.connect()
        con.execute(f"CREATE TABLE data AS SELECT * FROM read_csv('{path}')")
        assert len(con.execute(out).fetchall()) == 300


def _one_line_error(code, out, err, expect_code, *needles):
    assert code == expect_code
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sqlgrad: error: "), err
    for n in needles:
        assert n in lines[0]


def test_errors_are_one_line(points_csv, tmp_path, capsys):
    path, _, _ = points_csv
    m = str(tmp_path / "m.json")
    _one_line_error(
        *run(["train", str(tmp_path / "nope.csv"), "--target", "y", "-o", m], capsys), 2, "not found"
    )
    _one_line_error(*run(["train", "no_table", "--target", "y", "-o", m], capsys), 2, "no_table")
    _one_line_error(*run(["train", path, "--target", "zzz", "-o", m], capsys), 2, "zzz")
    _one_line_error(
        *run(["train", path, "--target", "label", "--features", "a,q", "-o", m], capsys), 2, "'q'"
    )
    _one_line_error(
        *run(["train", path, "--target", "label", "--db", "oracle://x", "-o", m], capsys),
        3,
        "unsupported database URL",
    )
    _one_line_error(
        *run(["train", path, "--target", "label", "--activation", "swish", "-o", m], capsys), 2, "swish"
    )
    _one_line_error(
        *run(["train", path, "--target", "label", "--lr", "-1", "-o", m], capsys), 2, "learning rate"
    )
    _one_line_error(
        *run(["train", path, "--target", "label", "--task", "regression", "-o", m], capsys),
        2,
        "numeric target",
    )
    assert not os.path.exists(m)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    _one_line_error(*run(["predict", str(bad), path], capsys), 2, "bad.json")
    bad.write_text(json.dumps({"format": "sqlgrad-model", "version": 99, "layers": []}))
    _one_line_error(*run(["evaluate", str(bad), path], capsys), 2, "version 99")
    _one_line_error(*run(["predict", str(tmp_path / "missing.json"), path], capsys), 2, "not found")


def test_errors_on_bad_data(tmp_path, capsys):
    one = tmp_path / "one.csv"
    one.write_text("x,y\n1,a\n2,a\n")
    m = str(tmp_path / "m.json")
    _one_line_error(*run(["train", str(one), "--target", "y", "-o", m], capsys), 2, "single class")
    nulls = tmp_path / "nulls.csv"
    nulls.write_text("x,y\n1,a\n,b\n3,a\n")
    _one_line_error(*run(["train", str(nulls), "--target", "y", "-o", m], capsys), 2, "'x'", "1 NULL")
    db = tmp_path / "e.db"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE empty (x DOUBLE, y VARCHAR)")
    con.close()
    _one_line_error(
        *run(["train", "empty", "--db", f"duckdb:///{db}", "--target", "y", "-o", m], capsys), 2, "no rows"
    )


def test_predict_with_missing_feature(points_csv, tmp_path, capsys):
    path, _, _ = points_csv
    m = str(tmp_path / "m.json")
    assert run(["train", path, "--target", "label", "--iterations", "2", "-o", m, "--quiet"], capsys)[0] == 0
    other = tmp_path / "other.csv"
    other.write_text("a,b,label\n1,2,yes\n")
    _one_line_error(*run(["predict", m, str(other)], capsys), 2, "'c'")


def test_console_script_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sqlgrad.cli",
            "train",
            str(tmp_path / "x.csv"),
            "--target",
            "y",
            "-o",
            str(tmp_path / "m.json"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("sqlgrad: error:")


def test_prediction_view(points_csv, tmp_path, capsys):
    path, _, _ = points_csv
    m = str(tmp_path / "m.json")
    assert run(["train", path, "--target", "label", "--iterations", "3", "-o", m, "--quiet"], capsys)[0] == 0
    db = tmp_path / "v.db"
    con = duckdb.connect(str(db))
    con.execute(
        f"CREATE TABLE pts AS SELECT * FROM read_csv('{path}', auto_type_candidates=['DOUBLE', 'VARCHAR'])"
    )
    con.close()
    url = f"duckdb:///{db}"
    code, out, err = run(["predict", m, "pts", "--db", url, "--view", "scored"], capsys)
    assert code == 0, err
    code, direct, err = run(["predict", m, "pts", "--db", url], capsys)
    assert code == 0, err
    con = duckdb.connect(str(db))
    from_view = con.execute('SELECT * FROM "scored"').fetchall()
    con.close()
    rows = list(csv.reader(io.StringIO(direct)))[1:]
    assert len(from_view) == len(rows) == 300
    assert [r[4] for r in from_view] == [r[4] for r in rows]
    np.testing.assert_allclose([r[6] for r in from_view], [float(r[6]) for r in rows], rtol=1e-12)
    _one_line_error(*run(["predict", m, "pts", "--db", url, "--view", "scored"], capsys), 2, "already exists")
    assert run(["predict", m, "pts", "--db", url, "--view", "scored", "--replace"], capsys)[0] == 0
    _one_line_error(*run(["predict", m, "pts", "--db", url, "--view", "pts", "--replace"], capsys), 3)
    code, out, _ = run(["sql", m, "--view", "scores", "--dialect", "postgres"], capsys)
    assert code == 0 and out.startswith('CREATE VIEW "scores" AS')
    assert sqlglot.parse_one(out.rstrip().rstrip(";"), read="postgres").kind == "VIEW"


def test_more_user_errors(tmp_path, capsys):
    inf = tmp_path / "inf.csv"
    inf.write_text("x,y\n1,a\ninf,b\n3,a\n")
    m = str(tmp_path / "m.json")
    _one_line_error(*run(["train", str(inf), "--target", "y", "-o", m], capsys), 2, "'x'", "infinite")
    init = os.path.join(os.path.dirname(__file__), "..", "examples", "article", "init.json")
    _one_line_error(
        *run(["train", str(inf), "--target", "y", "--init", init, "--hidden", "3", "-o", m], capsys),
        2,
        "--init",
    )
    assert not os.path.exists(m)


def test_activation_per_layer(points_csv, tmp_path, capsys):
    path, _, _ = points_csv
    m = str(tmp_path / "m.json")
    code, _, err = run(
        [
            "train",
            path,
            "--target",
            "label",
            "--hidden",
            "5,3",
            "--activation",
            "tanh,leaky_relu",
            "--iterations",
            "2",
            "-o",
            m,
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, err
    with open(m) as fh:
        layers = json.load(fh)["layers"]
    assert [layer["activation"] for layer in layers] == ["tanh", "leaky_relu", "softmax"]
    assert [len(layer["b"]) for layer in layers] == [5, 3, 2]


def test_predict_into_a_closed_pipe_is_quiet(tmp_path, capsys):
    # 100,000 scored rows: far more than a pipe buffer, so the writer meets the closed pipe
    path = os.path.join(os.path.dirname(__file__), "..", "examples", "article", "data.csv")
    m = str(tmp_path / "m.json")
    assert run(["train", path, "--target", "y", "--iterations", "2", "-o", m, "--quiet"], capsys)[0] == 0
    proc = subprocess.run(
        f'"{sys.executable}" -m sqlgrad.cli predict "{m}" "{path}" | head -1',
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.startswith("x1,x2,y,predicted_y")
    assert "Traceback" not in proc.stderr


def test_a_loss_that_grows_is_reported(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "g.csv"
    X = rng.normal(size=(200, 2))
    path.write_text("a,b,label\n" + "".join(f"{a!r},{b!r},{'yes' if a + b > 0 else 'no'}\n" for a, b in X))
    m = tmp_path / "m.json"
    argv = ["train", str(path), "--target", "label", "--iterations", "30", "--no-standardize", "-o", str(m)]
    code, _, err = run([*argv, "--lr", "300"], capsys)
    assert code == 0, err
    assert "training diverged" in " ".join(err.split())
    assert any("training diverged" in n for n in json.loads(m.read_text())["training"]["notes"])
    code, _, err = run([*argv, "--lr", "0.3"], capsys)
    assert code == 0 and "diverged" not in err


ARTICLE = os.path.join(os.path.dirname(__file__), "..", "examples", "article")


@pytest.mark.parametrize("strategy", ["recursive", "stepwise", "nested", "long"])
def test_training_sql_of_an_initial_weights_file(strategy, capsys):
    """An initial-weights file has no class labels: its classes are the indices 0..k-1 (once an
    AssertionError reached the user here)."""
    init = os.path.join(ARTICLE, "init.json")
    argv = ["sql", init, "--train", "--strategy", strategy, "--iterations", "2", "--json"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    statements = json.loads(out)["statements"]
    assert "CASE WHEN" in statements[0]  # the label index of y
    for text in statements:
        sqlglot.parse_one(text, read="duckdb")


def test_training_sql_gathers_as_the_models_training_did(tmp_path, capsys):
    """A 32-32-1 network trained on DuckDB gathered its first layer's gradient; ``sqlgrad sql --train``
    prints the statements that way unless told ``--no-gather``, and never for a dialect that cannot."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 32))
    path = tmp_path / "w.csv"
    header = ",".join(f"f{i}" for i in range(32)) + ",label\n"
    path.write_text(header + "".join(",".join(repr(float(v)) for v in r) + f",{int(r[0] > 0)}\n" for r in X))
    m = tmp_path / "m.json"
    argv = ["train", str(path), "--target", "label", "--hidden", "32", "--iterations", "2", "-o", str(m)]
    argv += ["--strategy", "recursive"]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert json.loads(m.read_text())["training"]["gathered_layers"] == [1]
    gathered = re.compile(r'LIST_INNER_PRODUCT\("\w+_list_\d+", "\w+_list_\d+"\)')
    for extra, dots in (([], 32 * 32), (["--no-gather"], 0), (["--dialect", "postgres"], 0)):
        code, out, err = run(["sql", str(m), "--train", "--iterations", "2", "--json", *extra], capsys)
        assert code == 0, err
        assert len(gathered.findall(" ".join(json.loads(out)["statements"]))) == dots
