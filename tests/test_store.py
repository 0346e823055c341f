"""Models saved in the database (``sqlgrad_models``): ``train --save-to-db`` and ``db:NAME`` arguments."""

from __future__ import annotations

import contextlib
import json
import os

import numpy as np
import pytest
from sqlglot import exp

from engines import opened, unique
from sqlgrad.cli import build_parser, main
from sqlgrad.engines import connect
from sqlgrad.errors import ModelFileError, TableNotFoundError, UsageError
from sqlgrad.model import Model
from sqlgrad.sqlexpr import col, table
from sqlgrad.store import TABLE, list_models, load_model, resolve_model, save_model


@pytest.fixture(params=["duckdb", "sqlite", "postgres", "mysql"])
def eng(request):
    yield from opened(request.param)


def small_model(scale: float = 1.0) -> Model:
    rng = np.random.default_rng(3)
    return Model(
        features=["a", "it's \\ b"],
        target="label",
        task="classification",
        head="softmax",
        activations=["tanh"],
        weights=[
            (scale * rng.normal(size=(2, 3)), rng.normal(size=3)),
            (rng.normal(size=(3, 2)), np.zeros(2)),
        ],
        classes=["no, or 'not'", 'yes \\ "sure"'],
        training={"note": "ünïcode ✓"},
    )


def test_save_load_replace_on_every_engine(eng):
    names = [unique("m"), unique("it's \\ m")]
    try:
        m = small_model()
        save_model(eng, names[0], m)
        save_model(eng, names[1], small_model(2.0))
        got = load_model(eng, names[0])
        assert got.to_dict() == m.to_dict()  # every double, label and text exactly
        assert load_model(eng, names[1]).weights[0][0].tolist() == (2.0 * m.weights[0][0]).tolist()
        listed = dict(list_models(eng))
        assert set(names) <= set(listed) and listed[names[0]] is not None
        with pytest.raises(UsageError, match="already in"):
            save_model(eng, names[0], small_model(3.0))
        assert load_model(eng, names[0]).to_dict() == m.to_dict()  # unchanged by the refusal
        save_model(eng, names[0], small_model(3.0), replace=True)
        assert load_model(eng, names[0]).weights[0][0].tolist() == (3.0 * m.weights[0][0]).tolist()
        with pytest.raises(ModelFileError, match="no model named"):
            load_model(eng, unique("absent"))
        assert resolve_model(f"db:{names[1]}", eng).classes == m.classes
    finally:
        with contextlib.suppress(Exception):
            names_in = exp.In(this=col("name"), expressions=[exp.Literal.string(n) for n in names])
            eng.execute(exp.delete(table(TABLE), where=names_in))
            if not list_models(eng):  # leave the server as it was
                eng.drop_table(TABLE)


def test_missing_table_and_bad_names(tmp_path):
    with connect(f"duckdb:///{tmp_path / 'empty.db'}") as eng:
        with pytest.raises(TableNotFoundError, match=TABLE):
            load_model(eng, "x")
        assert list_models(eng) == []
        with pytest.raises(UsageError, match="1 to 255"):
            save_model(eng, "", small_model())
        with pytest.raises(UsageError, match="--db"):
            resolve_model("db:x", None)


@pytest.fixture
def csv_path(tmp_path):
    rng = np.random.default_rng(5)
    path = tmp_path / "pts.csv"
    with open(path, "w") as fh:
        fh.write("a,b,colour,label\n")
        for _ in range(150):
            a, b = (float(v) for v in rng.normal(size=2))
            colour = ["red", "blue"][int(rng.integers(2))]
            fh.write(f"{a!r},{b!r},{colour},{'yes' if a - b > 0 else 'no'}\n")
    return str(path)


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


def test_cli_save_to_db_and_db_references(csv_path, tmp_path, capsys):
    db = f"duckdb:///{tmp_path / 'store.db'}"
    m1, m2 = str(tmp_path / "m1.json"), str(tmp_path / "m2.json")
    train = ["train", csv_path, "--target", "label", "--hidden", "3", "--iterations", "5", "--db", db]
    code, _, err = run([*train, "-o", m1, "--save-to-db", "first"], capsys)
    assert code == 0, err
    assert "model saved in sqlgrad_models as first" in err
    with connect(db) as eng:
        assert load_model(eng, "first").to_dict() == Model.load(m1).to_dict()
    # every command that takes MODEL.json takes db:NAME, with the same result
    for command in (
        ["predict", "{m}", csv_path, "--db", db],
        ["predict", "{m}", csv_path, "--db", db, "--json"],
        ["evaluate", "{m}", csv_path, "--db", db, "--json"],
        ["sql", "{m}", "--dialect", "postgres", "--db", db],
        ["export", "{m}", "--dialect", "mysql", "--weights-table", "w", "--db", db],
    ):
        from_file = run([a.format(m=m1) for a in command], capsys)
        from_db = run([a.format(m="db:first") for a in command], capsys)
        assert from_file[0] == from_db[0] == 0, from_db[2]
        assert from_file[1] == from_db[1]

    # an existing name: refused before training, no model file written, the saved model unchanged
    one_line(
        run([*train, "--seed", "3", "-o", m2, "--save-to-db", "first"], capsys), 2, "'first'", "--replace"
    )
    assert not os.path.exists(m2)
    with connect(db) as eng:
        assert load_model(eng, "first").to_dict() == Model.load(m1).to_dict()
    code, _, err = run(
        [*train, "--seed", "3", "-o", m2, "--save-to-db", "first", "--replace", "--json"], capsys
    )
    assert code == 0, err
    with connect(db) as eng:
        assert load_model(eng, "first").to_dict() == Model.load(m2).to_dict()
        assert [n for n, _ in list_models(eng)] == ["first"]

    one_line(run(["predict", "db:second", csv_path, "--db", db], capsys), 2, "no model named 'second'")
    one_line(run(["predict", "db:first", csv_path], capsys), 2, "--db")
    one_line(run([*train[:-2], "-o", m2, "--save-to-db", "x"], capsys), 2, "--save-to-db")
    one_line(run([*train, "-o", m2, "--replace"], capsys), 2, "--replace")
    empty = f"duckdb:///{tmp_path / 'empty.db'}"
    one_line(run(["evaluate", "db:first", csv_path, "--db", empty], capsys), 2, "sqlgrad_models")


def test_stored_json_is_the_model_file(tmp_path):
    with connect(f"duckdb:///{tmp_path / 's.db'}") as eng:
        save_model(eng, "m", small_model())
        text = eng.scalar(exp.select(col("model")).from_(table(TABLE)))
    assert json.loads(text) == json.loads(json.dumps(small_model().to_dict()))


def test_train_starts_from_a_saved_model(csv_path, tmp_path, capsys):
    db = f"duckdb:///{tmp_path / 'store.db'}"
    m1 = str(tmp_path / "m1.json")
    train = ["train", csv_path, "--target", "label", "--iterations", "4", "--db", db, "--quiet"]
    assert run([*train, "--hidden", "3", "-o", m1, "--save-to-db", "first"], capsys)[0] == 0
    options = ["--init"]
    if "warm_start" in vars(build_parser().parse_args(["train", "x", "--target", "y", "-o", "m"])):
        options.append("--warm-start")
    for option in options:
        from_file, from_db = str(tmp_path / "f.json"), str(tmp_path / "d.json")
        assert run([*train, option, m1, "-o", from_file], capsys)[0] == 0
        code, _, err = run([*train, option, "db:first", "-o", from_db], capsys)
        assert code == 0, err
        assert Model.load(from_db).to_dict()["layers"] == Model.load(from_file).to_dict()["layers"]
    one_line(run([*train, "--init", "db:none", "-o", m1], capsys), 2, "no model named 'none'")
