"""Issue 5, item 4: every user error ends with one line naming the problem, a non-zero exit code, and the
database exactly as it was (same tables and views, same rows), through the CLI.

Each case runs ``sqlgrad`` (``cli.main``) against a database file holding the user's tables, takes a
snapshot of every table and view with their rows before and after (read with the engine's own driver,
not through sqlgrad), and checks the exit code, that the one line of ``stderr`` names the problem, and
that the snapshots are equal. The data cases run on DuckDB and SQLite files, and on PostgreSQL for the
cases that reach a server.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable

import duckdb
import pytest
from sqlglot import exp

from engines import URLS, open_engine, release, unique
from sqlgrad.cli import main
from sqlgrad.sqlexpr import table as sql_table

WEIRD_TABLE = 'we"ird; tab le ü select'
WEIRD_COLUMNS = ['"q"', "semi;colon", "üñí", "select"]
WEIRD_LABEL = "from"


def _rows(n: int) -> list[tuple[float, float, str]]:
    return [(i / 7.0 - 3, ((i * 13) % 11) / 5.0, "yes" if (i / 7.0 - 3) + ((i * 13) % 11) / 5.0 > 1 else "no")
            for i in range(n)]  # fmt: skip


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


USER_SETUP = [
    'CREATE TABLE "points" ("x" DOUBLE PRECISION, "y z" DOUBLE PRECISION, "label" VARCHAR(10))',
    'CREATE TABLE "one class" ("x" DOUBLE PRECISION, "label" VARCHAR(10))',
    'CREATE TABLE "empty" ("x" DOUBLE PRECISION, "label" VARCHAR(10))',
    'CREATE TABLE "other" ("x" DOUBLE PRECISION, "label" VARCHAR(10))',
    'CREATE TABLE "typed" ("x" VARCHAR(10), "y z" DOUBLE PRECISION, "label" VARCHAR(10))',
    'CREATE TABLE "gone" ("x" DOUBLE PRECISION, "label" VARCHAR(10))',
    'CREATE VIEW "pv" AS SELECT * FROM "points" WHERE "x" > -2',
    'CREATE VIEW "broken" AS SELECT * FROM "gone"',
    'DROP TABLE "gone"',
    f"CREATE TABLE {_q(WEIRD_TABLE)} ({', '.join(_q(c) + ' DOUBLE PRECISION' for c in WEIRD_COLUMNS)}, "
    f"{_q(WEIRD_LABEL)} VARCHAR(10))",
]


def _fill(execute: Callable[[str, list[tuple]], None]) -> None:
    rows = _rows(80)
    execute('INSERT INTO "points" VALUES (?, ?, ?)', rows)
    execute('INSERT INTO "one class" VALUES (?, ?)', [(r[0], "yes") for r in rows])
    execute('INSERT INTO "other" VALUES (?, ?)', [(r[0], r[2]) for r in rows])
    execute('INSERT INTO "typed" VALUES (?, ?, ?)', [(str(r[0]), r[1], r[2]) for r in rows])
    weird = [(r[0], r[1], r[0] * r[1], 1.0, r[2]) for r in rows]
    execute(f"INSERT INTO {_q(WEIRD_TABLE)} VALUES (?, ?, ?, ?, ?)", weird)


class UserDB:
    """A database file of the user's tables on one engine, and a snapshot of all of it."""

    def __init__(self, kind: str, path: str) -> None:
        self.kind, self.path = kind, path
        self.url = f"{kind}:///{path}"
        con = self._connect()
        try:
            for sql in USER_SETUP:
                con.execute(sql)
            _fill(lambda sql, rows: con.executemany(sql, rows))
            con.execute('CREATE TABLE "with inf" AS SELECT * FROM "points"')
            inf = "'inf'::DOUBLE" if kind == "duckdb" else "9e999"  # SQLite reads 9e999 as infinity
            con.execute(f"INSERT INTO \"with inf\" VALUES ({inf}, 0, 'no')")
            if kind == "sqlite":
                con.commit()
        finally:
            con.close()

    def _connect(self):
        return duckdb.connect(self.path) if self.kind == "duckdb" else sqlite3.connect(self.path)

    def snapshot(self) -> dict[str, list]:
        con = self._connect()
        try:
            if self.kind == "duckdb":
                names = [r[0] for r in con.execute(
                    "SELECT table_name FROM duckdb_tables() UNION ALL "
                    "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()]  # fmt: skip
            else:
                names = [
                    r[0]
                    for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
                ]
            out = {}
            for n in sorted(names):
                try:
                    out[n] = sorted(map(repr, con.execute(f"SELECT * FROM {_q(n)}").fetchall()))
                except (duckdb.Error, sqlite3.Error) as err:  # the broken view stays broken
                    out[n] = [type(err).__name__]
            return out
        finally:
            con.close()


@pytest.fixture(scope="module", params=["duckdb", "sqlite"])
def user_db(request, tmp_path_factory) -> UserDB:
    """One database per engine for the module: every test checks that it leaves it unchanged."""
    return UserDB(request.param, str(tmp_path_factory.mktemp("errors") / f"user.{request.param}"))


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_error(result: tuple[int, str, str], code: int, *needles: str) -> None:
    got, _, err = result
    lines = err.strip().splitlines()
    assert got == code, (got, err)
    assert len(lines) == 1 and lines[0].startswith("sqlgrad: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.fixture
def model_file(user_db, tmp_path, capsys) -> str:
    m = str(tmp_path / "good.json")
    argv = [
        "train",
        "points",
        "--db",
        user_db.url,
        "--target",
        "label",
        "--iterations",
        "3",
        "-o",
        m,
        "--quiet",
    ]
    assert run(argv, capsys)[0] == 0
    return m


TRAIN_CASES = [
    # (case, DATA, extra arguments, exit code, words the message must contain)
    ("missing table", "nowhere", [], 2, ["'nowhere'", "no table or view"]),
    ("missing view", "pv2", [], 2, ["'pv2'"]),
    ("broken view", "broken", [], 2, ["'broken'"]),
    ("missing target", "points", ["--target", "nope"], 2, ["'nope'"]),
    ("missing feature", "points", ["--features", "x,zz"], 2, ["'zz'"]),
    ("missing excluded column", "points", ["--exclude", "zz"], 2, ["'zz'"]),
    ("empty table", "empty", [], 2, ["no rows"]),
    ("single class", "one class", [], 2, ["single class", "'yes'"]),
    ("text target for regression", "points", ["--task", "regression"], 2, ["'label'", "numeric target"]),
    ("infinite values", "with inf", [], 2, ["'x'", "infinite"]),
    (
        "text column where a number is needed",
        "typed",
        ["--features", "x,y z", "--max-categories", "0"],
        2,
        ["max categories"],
    ),
]


@pytest.mark.parametrize("case, data, extra, code, needles", TRAIN_CASES, ids=[c[0] for c in TRAIN_CASES])
def test_training_errors_change_nothing(user_db, tmp_path, capsys, case, data, extra, code, needles):
    before = user_db.snapshot()
    m = tmp_path / "m.json"
    argv = ["train", data, "--db", user_db.url, "-o", str(m), "--iterations", "2"]
    if "--target" not in extra:
        argv += ["--target", "label"]
    assert_error(run(argv + extra, capsys), code, *needles)
    assert not m.exists()
    assert user_db.snapshot() == before


def _corrupt(good: dict, how: str) -> str | dict:
    bad = json.loads(json.dumps(good))
    if how == "not json":
        return "{not json"
    if how == "truncated":
        return json.dumps(good)[: len(json.dumps(good)) // 2]
    if how == "other version":
        bad["version"] = 99
    elif how == "not a model":
        bad["format"] = "something-else"
    elif how == "weights of the wrong shape":
        bad["layers"][0]["W"] = bad["layers"][0]["W"][:-1]
    elif how == "a weight that is not a number":
        bad["layers"][0]["b"][0] = "NaN?"
    elif how == "unknown activation":
        bad["layers"][0]["activation"] = "swish"
    return bad


MODEL_CASES = [
    ("not json", ["m.json"]),
    ("truncated", ["m.json"]),
    ("other version", ["version 99"]),
    ("not a model", ["m.json"]),
    ("weights of the wrong shape", ["m.json"]),
    ("a weight that is not a number", ["m.json"]),
    ("unknown activation", ["swish"]),
]


@pytest.mark.parametrize("how, needles", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
@pytest.mark.parametrize("command", ["predict", "evaluate", "sql", "export"])
def test_corrupt_model_files(user_db, model_file, tmp_path, capsys, how, needles, command):
    with open(model_file) as fh:
        good = json.load(fh)
    bad = _corrupt(good, how)
    path = tmp_path / "m.json"
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    before = user_db.snapshot()
    argv = {
        "predict": ["predict", str(path), "points", "--db", user_db.url],
        "evaluate": ["evaluate", str(path), "points", "--db", user_db.url],
        "sql": ["sql", str(path)],
        "export": ["export", str(path), "--dialect", "postgres"],
    }[command]
    assert_error(run(argv, capsys), 2, *needles)
    assert user_db.snapshot() == before


PREDICT_CASES = [
    ("model for other features", "other", ["'y z'", "other"]),
    ("feature of another type", "typed", ["'x'", "typed"]),
    ("missing table at prediction", "nowhere", ["'nowhere'"]),
]


@pytest.mark.parametrize("case, data, needles", PREDICT_CASES, ids=[c[0] for c in PREDICT_CASES])
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_prediction_errors_change_nothing(
    user_db, model_file, tmp_path, capsys, case, data, needles, command
):
    before = user_db.snapshot()
    out = tmp_path / "scores.csv"
    argv = [command, model_file, data, "--db", user_db.url] + (
        ["-o", str(out)] if command == "predict" else []
    )
    assert_error(run(argv, capsys), 2, *needles)
    assert not out.exists()
    # a view is not created either
    argv = ["predict", model_file, data, "--db", user_db.url, "--view", "scores"]
    assert_error(run(argv, capsys), 2, *needles)
    assert user_db.snapshot() == before


def test_missing_model_file(user_db, tmp_path, capsys):
    before = user_db.snapshot()
    missing = str(tmp_path / "missing.json")
    assert_error(
        run(["predict", missing, "points", "--db", user_db.url], capsys), 2, "missing.json", "not found"
    )
    assert user_db.snapshot() == before


def test_weird_names_work(user_db, tmp_path, capsys):
    """Quotes, semicolons, spaces, unicode and reserved words are legal names: they train and score."""
    before = user_db.snapshot()
    m = str(tmp_path / "w.json")
    argv = ["train", WEIRD_TABLE, "--db", user_db.url, "--target", WEIRD_LABEL, "-o", m]
    argv += ["--iterations", "3", "--quiet"]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    code, out, err = run(["predict", m, WEIRD_TABLE, "--db", user_db.url], capsys)
    assert code == 0, err
    header = out.splitlines()[0]
    for c in [*WEIRD_COLUMNS, WEIRD_LABEL]:
        assert c.replace('"', '""') in header or c in header
    assert len(out.strip().splitlines()) == 81
    # and a missing weird name is reported by its own name
    argv = ["train", WEIRD_TABLE + "x", "--db", user_db.url, "--target", WEIRD_LABEL, "-o", m]
    assert_error(run(argv, capsys), 2, "ü")
    assert user_db.snapshot() == before


URL_CASES = [
    ("unsupported scheme", "oracle://scott@db/orcl", 3, ["unsupported database URL"]),
    ("relative duckdb path", "duckdb://relative.db", 3, ["bad DuckDB URL"]),
    ("unknown duckdb setting", "duckdb://?bogus_setting=1", 3, ["bogus_setting"]),
    ("duckdb setting without a value", "duckdb://?threads", 3, ["?name=value"]),
    ("duckdb file in a missing folder", "duckdb:////nonexistent/folder/x.db", 3, ["cannot open DuckDB"]),
    ("sqlite file in a missing folder", "sqlite:////nonexistent/folder/x.db", 3, ["cannot open SQLite"]),
    (
        "postgres server not answering",
        "postgresql://postgres@127.0.0.1:1/test",
        3,
        ["cannot connect to PostgreSQL"],
    ),
    ("mariadb server not answering", "mysql://root@127.0.0.1:1/test", 3, ["cannot connect to MariaDB/MySQL"]),
    (
        "postgres database that does not exist",
        URLS["postgres"].rsplit("/", 1)[0] + "/sg_no_such_db",
        3,
        ["sg_no_such_db"],
    ),
    ("no database in a mysql URL", "mysql://root@127.0.0.1:3306", 3, ["no database"]),
]


@pytest.mark.parametrize("case, url, code, needles", URL_CASES, ids=[c[0] for c in URL_CASES])
def test_engine_urls(tmp_path, capsys, case, url, code, needles):
    m = tmp_path / "m.json"
    assert_error(
        run(["train", "points", "--db", url, "--target", "label", "-o", str(m)], capsys), code, *needles
    )
    assert not m.exists()
    assert not os.path.exists("relative.db")


@pytest.fixture
def pg_tables():
    engine = open_engine("postgres")  # skips (or fails in CI) when the server is down
    name = unique("sgerr")
    rows = _rows(40)
    engine.execute(f'CREATE TABLE "{name}" ("x" DOUBLE PRECISION, "y z" DOUBLE PRECISION, "label" TEXT)')
    values = ", ".join(f"({a!r}, {b!r}, '{c}')" for a, b, c in rows)
    engine.execute(f'INSERT INTO "{name}" VALUES {values}')
    engine.execute(f'CREATE TABLE "{name} one" AS SELECT "x", \'yes\' AS "label" FROM "{name}"')

    def snapshot() -> dict:
        names = [r[0] for r in engine.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            f"AND (table_name LIKE '{name}%' OR table_name LIKE 'sqlgrad%')")]  # fmt: skip
        return {n: sorted(map(repr, engine.query(f'SELECT * FROM "{n}"'))) for n in sorted(names)}

    yield name, snapshot
    for t in (name, f"{name} one"):
        engine.execute(f'DROP TABLE IF EXISTS "{t}"')
    release(engine)


def test_server_errors_change_nothing(pg_tables, tmp_path, capsys):
    name, snapshot = pg_tables
    url = URLS["postgres"]
    before = snapshot()
    m = str(tmp_path / "m.json")
    for data, extra, needles in (
        (name + "_missing", [], ["_missing"]),
        (f"{name} one", [], ["single class"]),
        (name, ["--target", "nope"], ["'nope'"]),
        (name, ["--task", "regression"], ["numeric target"]),
    ):
        argv = ["train", data, "--db", url, "-o", m, "--iterations", "2"]
        argv += extra if "--target" in extra else ["--target", "label", *extra]
        assert_error(run(argv, capsys), 2, *needles)
    assert snapshot() == before
    assert (
        run(
            ["train", name, "--db", url, "--target", "label", "--iterations", "2", "-o", m, "--quiet"], capsys
        )[0]
        == 0
    )
    assert_error(run(["predict", m, f"{name} one", "--db", url], capsys), 2, "'y z'")
    assert snapshot() == before


@pytest.mark.parametrize("name", ["postgres", "mysql"])
def test_overflow_on_a_server_is_divergence(name, tmp_path, capsys):
    """PostgreSQL and MariaDB raise on a double overflow (others return infinity): still exit code 4."""
    engine = open_engine(name)
    table = unique("sgdiv")
    try:
        engine.create_table(
            table, [("a", "float"), ("y", "float")], [(i / 10, 3 * i / 10) for i in range(50)]
        )
        m = tmp_path / "m.json"
        argv = ["train", table, "--db", URLS[name], "--target", "y", "--task", "regression", "--lr", "1e6"]
        argv += ["--hidden", "4", "--iterations", "50", "-o", str(m)]
        assert_error(run(argv, capsys), 4, "training diverged", "lower --lr")
        assert not m.exists()
        count = exp.select(exp.Count(this=exp.Star())).from_(sql_table(table))
        assert engine.scalar(count) == 50
    finally:
        engine.drop_table(table)
        release(engine)
