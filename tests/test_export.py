"""``sqlgrad export``: scoring SQL without sqlgrad, in every dialect it targets.

The exported view, created on DuckDB, SQLite, PostgreSQL and MariaDB, gives the predictions of
``sqlgrad predict`` (labels exactly, probabilities and values to 1e-12), for a classifier with a text
label, a categorical, a boolean and an imputed feature, and for a regressor; with the weights inlined
and read from a weights table, whose rows can be replaced under the view.
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import sqlglot
from sqlglot import exp

from engines import opened, unique
from sqlgrad.cli import main
from sqlgrad.export import DIALECTS, export_sql, weight_rows
from sqlgrad.model import Model
from sqlgrad.sqlexpr import table

COLUMNS = [("id", "integer"), ("a", "float"), ("b", "float"), ("colour", "text"), ("member", "boolean")]
COLOURS = ["red", "green", "blue", "it's \\ odd"]


def make_rows(n: int = 240, seed: int = 11) -> list[tuple]:
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n):
        a, b = (float(v) for v in rng.normal(size=2))
        colour = COLOURS[int(rng.integers(len(COLOURS)))]
        member = bool(rng.integers(2))
        label = "yes" if a + (colour == "red") - 0.5 * b + 0.3 * member > 0.3 else "no, or 'not'"
        value = 2 * a - b + (colour == "blue") + 0.5 * member + 0.1 * float(rng.normal())
        rows.append((k, a, None if k % 17 == 5 else b, colour, member, label, value))
    return rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A classifier and a regressor trained by the CLI on a DuckDB file, and their predictions."""
    tmp = tmp_path_factory.mktemp("export")
    db = f"duckdb:///{tmp / 'data.db'}"
    rows = make_rows()
    from sqlgrad.engines import connect

    with connect(db) as eng:
        eng.create_table("pts", [*COLUMNS, ("label", "text"), ("value", "float")], rows)
    models = {}
    for kind, target, extra in [
        ("classifier", "label", ["--exclude", "id,value", "--hidden", "5", "--lr", "0.5"]),
        ("regressor", "value", ["--exclude", "id,label", "--hidden", "4,3", "--activation", "tanh"]),
    ]:
        path = str(tmp / f"{kind}.json")
        argv = ["train", "pts", "--db", db, "--target", target, "--impute", "mean", "--iterations", "40"]
        assert main([*argv, *extra, "-o", path, "--quiet"]) == 0
        models[kind] = path
    # a second classifier: the same architecture and preprocessing, other weights
    with open(models["classifier"]) as fh:
        data = json.load(fh)
    for layer in data["layers"]:
        layer["W"] = [[0.5 * w + 0.01 for w in row] for row in layer["W"]]
        layer["b"] = [b - 0.02 for b in layer["b"]]
    models["other"] = str(tmp / "other.json")
    with open(models["other"], "w") as fh:
        json.dump(data, fh)
    return db, rows, models


def predicted(db: str, model: str, capsys) -> dict[int, dict]:
    """``sqlgrad predict --json`` on the training table, by id."""
    capsys.readouterr()
    assert main(["predict", model, "pts", "--db", db, "--json"]) == 0
    out = capsys.readouterr().out
    return {r["id"]: r for r in map(json.loads, out.splitlines())}


def exported(argv: list[str], capsys) -> list[str]:
    capsys.readouterr()
    code = main(["export", *argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)["statements"]


def check_same(got_rows: list[tuple], names: list[str], want: dict[int, dict], model: Model) -> None:
    assert len(got_rows) == len(want)
    outputs = model.output_columns()
    for row in got_rows:
        got = dict(zip(names, row, strict=True))
        ref = want[int(got["id"])]
        for c in outputs:
            if c.startswith("probability_") or model.task == "regression":
                assert abs(float(got[c]) - ref[c]) <= 1e-12, (c, got[c], ref[c])
            else:
                assert got[c] == ref[c], (c, got[c], ref[c])


@pytest.fixture(params=["duckdb", "sqlite", "postgres", "mysql"])
def eng(request):
    yield from opened(request.param)


def _drop_view(engine, name: str) -> None:
    with contextlib.suppress(Exception):
        engine.execute(exp.Drop(tables=[table(name)], kind="VIEW", exists=True))


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("weights", [False, True], ids=["inline", "weights-table"])
def test_exported_view_gives_predict_results(eng, trained, capsys, kind, weights):
    db, rows, models = trained
    want = predicted(db, models[kind], capsys)
    model = Model.load(models[kind])
    data, view, wt = unique("pts"), unique("scored"), unique("weights")
    eng.create_table(data, [*COLUMNS, ("label", "text"), ("value", "float")], rows)
    eng.created.append(data)
    dialect = eng.capabilities.dialect
    argv = [models[kind], "--dialect", dialect, "--table", data, "--columns", "id", "--view", view]
    if weights:
        argv += ["--weights-table", wt]
        eng.created.append(wt)
    statements = exported(argv, capsys)
    assert len(statements) == (3 if weights else 1)
    try:
        for sql in statements:
            eng.execute(sql)
        names = [c.name for c in eng.describe(table(view))]
        assert names == ["id", "a", "b", "colour", "member", *model.output_columns()]
        check_same(eng.query(f"SELECT * FROM {eng.render(table(view))}"), names, want, model)
        if weights and kind == "classifier":
            # a retrained model of the same shape: new rows in the weights table, the same view
            for sql in exported(
                [models["other"], "--dialect", dialect, "--weights-table", wt, "--weights-only"], capsys
            ):
                eng.execute(sql)
            other = predicted(db, models["other"], capsys)
            got = eng.query(f"SELECT * FROM {eng.render(table(view))}")
            check_same(got, names, other, Model.load(models["other"]))
            assert any(r[names.index("probability_yes")] != want[int(r[0])]["probability_yes"] for r in got)
    finally:
        _drop_view(eng, view)


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "options",
    [
        [],
        ["--view", "scores", "--replace"],
        ["--weights-table", "w"],
        ["--view", "v", "--weights-table", "s.w"],
    ],
    ids=["query", "view", "weights-table", "view-weights-table"],
)
def test_every_dialect_renders_and_parses_back(trained, capsys, dialect, options):
    _, _, models = trained
    capsys.readouterr()
    assert main(["export", models["classifier"], "--dialect", dialect, "--table", "sales.pts", *options]) == 0
    out = capsys.readouterr().out
    statements = [s for s in sqlglot.parse(out, read=dialect) if s is not None]
    kinds = [type(s).__name__ for s in statements]
    want = ["Create", "Insert"] if "--weights-table" in options else []
    want.append("Create" if "--view" in options else "Select")
    assert kinds == want
    assert "LOG(" not in out.upper()  # natural log is LN
    if "--weights-table" in options:
        assert '"__sg_w1_0_0"' in statements[-1].sql() or "__sg_w1_0_0" in out


def test_weight_rows_cover_every_parameter(trained):
    _, _, models = trained
    model = Model.load(models["regressor"])
    rows = weight_rows(model)
    assert len(rows) == sum(np.size(w) + np.size(b) for w, b in model.weights)
    assert len({(k, i, j) for k, i, j, _ in rows}) == len(rows)
    w2 = np.asarray(model.weights[1][0])
    assert (2, 1, 2, float(w2[1, 2])) in rows
    assert (3, -1, 0, float(model.weights[2][1][0])) in rows


def test_export_to_file_and_api(trained, tmp_path, capsys):
    _, _, models = trained
    out = tmp_path / "score.sql"
    capsys.readouterr()
    assert main(["export", models["regressor"], "--dialect", "sqlite", "-o", str(out)]) == 0
    assert "wrote 1 sqlite statements" in capsys.readouterr().out
    model = Model.load(models["regressor"])
    assert out.read_text().strip() == export_sql(model, "sqlite")
    # the model's features are always kept, after the requested columns
    q = sqlglot.parse_one(export_sql(model, "duckdb", columns=["id", "a"]).rstrip(";"), read="duckdb")
    assert [e.alias_or_name for e in q.expressions] == ["id", "a", "b", "colour", "member", "predicted_value"]


def _one_line(capsys, code, expect, *needles):
    _, err = capsys.readouterr()
    assert code == expect
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sqlgrad: error: "), err
    for n in needles:
        assert n in lines[0]


def test_export_errors_are_one_line(trained, tmp_path, capsys):
    _, _, models = trained
    m = models["classifier"]
    capsys.readouterr()
    _one_line(capsys, main(["export", m, "--dialect", "oracle"]), 2, "oracle", "duckdb")
    _one_line(capsys, main(["export", m, "--weights-only"]), 2, "--weights-table")
    _one_line(capsys, main(["export", m, "--replace"]), 2, "--view")
    _one_line(capsys, main(["export", str(tmp_path / "none.json")]), 2, "not found")
    _one_line(capsys, main(["export", "db:nope"]), 2, "--db")
    _one_line(capsys, main(["export", m, "-o", str(tmp_path / "no" / "dir.sql")]), 2, "cannot write")
