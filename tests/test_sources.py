"""What a training reads (issue 7 item 1, issue 5 item 5): a table, an explicit SQL query, a pandas or
Arrow data frame; and connections the caller holds (DuckDB, sqlite3, psycopg, PyMySQL), given back in
the state they came in.

Every source trains to the same weights as the same rows in a table (the plans are exact), so the test
compares with the table's run rather than with a tolerance.
"""

from __future__ import annotations

import contextlib
import sqlite3

import numpy as np
import pytest

import sqlgrad
from engines import URLS, open_engine, release, unique
from sqlgrad.cli import main
from sqlgrad.engines.duckdb import DuckDBEngine
from sqlgrad.errors import DataError, EngineError, UsageError
from sqlgrad.sources import Query

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")

SETTINGS = {"hidden": [3], "lr": 0.3, "iterations": 15, "standardize": True, "seed": 2}


def frame(n: int = 120, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    label = np.where(x1 + 0.5 * x2 + (colour == "red") > 0.3, "yes", "no")
    return pd.DataFrame(
        {"x 1": x1, "x2": x2, "colour": colour, "label": label, "keep": np.arange(n) % 4 != 0}
    )


def same_weights(a: sqlgrad.Model, b: sqlgrad.Model) -> None:
    for (wa, ba), (wb, bb) in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(ba, bb)


def tables(eng: DuckDBEngine) -> list[str]:
    names = "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views()"
    return sorted(r[0] for r in eng.query(names + " WHERE NOT internal"))


@pytest.fixture
def duck():
    eng = DuckDBEngine()
    df = frame()
    eng.connection.register("df_view", df)
    eng.connection.execute('CREATE TABLE "points" AS SELECT * FROM df_view')
    eng.connection.unregister("df_view")
    yield eng, df
    eng.close()


def test_frames_train_like_the_table(duck):
    eng, df = duck
    features = ["x 1", "x2", "colour"]
    from_table = sqlgrad.train("points", "label", features=features, db=eng, **SETTINGS)
    before = tables(eng)
    from_pandas = sqlgrad.train(df, "label", features=features, db=eng, **SETTINGS)
    from_arrow = sqlgrad.train(pa.Table.from_pandas(df), "label", features=features, db=eng, **SETTINGS)
    same_weights(from_pandas, from_table)
    same_weights(from_arrow, from_table)
    assert from_pandas.classes == ["no", "yes"] and from_pandas.features == features
    assert tables(eng) == before  # the registration is gone
    # predict and evaluate read frames too; predict_query cannot outlive the frame
    names, rows = sqlgrad.predict(from_pandas, df, db=eng)
    _, table_rows = sqlgrad.predict(from_pandas, "points", db=eng)
    assert rows == table_rows and names[-3] == "predicted_label"
    assert sqlgrad.evaluate(from_pandas, df, db=eng) == sqlgrad.evaluate(from_pandas, "points", db=eng)
    with pytest.raises(UsageError, match="would not outlive"):
        sqlgrad.predict_query(from_pandas, df, db=eng)
    assert tables(eng) == before


def test_a_frame_on_another_engine_is_a_temporary_table(duck, tmp_path):
    eng, df = duck
    from_table = sqlgrad.train("points", "label", features=["x 1", "x2", "colour"], db=eng, **SETTINGS)
    path = tmp_path / "f.db"
    url = f"sqlite:///{path}"
    model = sqlgrad.train(df, "label", features=["x 1", "x2", "colour"], db=url, **SETTINGS)
    np.testing.assert_allclose(model.weights[0][0], from_table.weights[0][0], rtol=1e-12)
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT name FROM sqlite_master").fetchall() == []
    finally:
        con.close()


def test_unsupported_data_is_one_clear_error(duck):
    eng, _ = duck
    with pytest.raises(UsageError, match="data must be a table or view name"):
        sqlgrad.train([[1, 2]], "label", db=eng)


def test_query_source(duck):
    eng, df = duck
    features = ["x 1", "x2", "colour"]
    kept = df[df["keep"]].reset_index(drop=True)
    from_frame = sqlgrad.train(kept, "label", features=features, db=eng, **SETTINGS)
    q = Query('SELECT "x 1", x2, colour, label FROM points WHERE keep')
    from_query = sqlgrad.train(q, "label", db=eng, **SETTINGS)
    same_weights(from_query, from_frame)
    assert from_query.features == features
    # a view scoring a query embeds it
    sql = sqlgrad.create_view(from_query, q, "scored", db=eng)
    assert "WHERE" in sql
    assert eng.scalar('SELECT COUNT(*) FROM "scored"') == len(kept)
    assert sqlgrad.evaluate(from_query, q, db=eng)["n"] == len(kept)


@pytest.mark.parametrize(
    "sql, message",
    [
        ("DROP TABLE points", "not DROP"),
        ("DELETE FROM points", "not DELETE"),
        ("SELECT 1; DROP TABLE points", "not 2 statements"),
        ("WITH d AS (DELETE FROM points RETURNING *) SELECT * FROM d", "not DELETE"),
        ("SELECT * INTO copy FROM points", "not INTO"),
        ("UPDATE points SET x2 = 0", "not UPDATE"),
        ("   ", "empty"),
        ("SELEC x FROM points", "not valid duckdb SQL"),
    ],
)
def test_queries_that_write_are_refused_and_change_nothing(duck, sql, message):
    eng, _ = duck
    before = eng.query('SELECT * FROM "points"')
    with pytest.raises(UsageError, match=message):
        sqlgrad.train(Query(sql), "label", db=eng, iterations=1)
    assert eng.query('SELECT * FROM "points"') == before
    assert tables(eng) == ["points"]


def test_a_failing_query_is_a_data_error(duck):
    eng, _ = duck
    with pytest.raises(DataError, match="the query failed"):
        sqlgrad.train(Query("SELECT * FROM nowhere"), "label", db=eng)


def test_cli_query(duck, tmp_path, capsys):
    eng, _ = duck
    path = tmp_path / "q.db"
    eng.connection.execute(f"ATTACH '{path}' AS f")
    eng.connection.execute('CREATE TABLE f."points" AS SELECT * FROM "points"')
    eng.connection.execute("DETACH f")
    url, m = f"duckdb:///{path}", str(tmp_path / "m.json")
    q = 'SELECT "x 1", x2, colour, label FROM points WHERE keep'
    code = main(
        ["train", "--query", q, "--db", url, "--target", "label", "--iterations", "5", "-o", m, "--quiet"]
    )
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["evaluate", m, "--query", q, "--db", url, "--json"]) == 0
    assert '"n": 90' in capsys.readouterr().out
    assert main(["predict", m, "--query", q, "--db", url]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 91
    for argv, needle in (
        (["train", "points", "--query", q, "--db", url, "--target", "label", "-o", m], "not both"),
        (["train", "--db", url, "--target", "label", "-o", m], "DATA is missing"),
        (["train", "--query", "DROP TABLE points", "--db", url, "--target", "label", "-o", m], "not DROP"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0], err


# --- connections the caller holds -------------------------------------------------------------------


def test_held_sqlite_connection_is_given_back(tmp_path):
    df = frame()
    con = sqlite3.connect(tmp_path / "h.db")
    con.execute('CREATE TABLE "points" ("x 1" REAL, "x2" REAL, "colour" TEXT, "label" TEXT, "keep" INTEGER)')
    con.executemany('INSERT INTO "points" VALUES (?, ?, ?, ?, ?)', df.astype(object).values.tolist())
    con.commit()
    level = con.isolation_level
    model = sqlgrad.train("points", "label", features=["x 1", "x2", "colour"], db=con, **SETTINGS)
    assert model.training["engine"] == "sqlite"
    assert con.isolation_level == level and not con.in_transaction
    assert con.execute("SELECT name FROM sqlite_master").fetchall() == [("points",)]
    con.execute("INSERT INTO points VALUES (0, 0, 'red', 'yes', 1)")  # a transaction of the user's
    with pytest.raises(UsageError, match="inside a transaction"):
        sqlgrad.train("points", "label", db=con, iterations=1)
    assert con.in_transaction  # untouched
    con.rollback()
    con.close()


def _held(name: str):
    engine = open_engine(name)  # skips (or fails in CI) when the server is down
    release(engine)
    url = URLS[name]
    if name == "postgres":
        import psycopg

        return psycopg.connect("postgresql://" + url.split("://", 1)[1])
    from urllib.parse import urlsplit

    import pymysql

    parts = urlsplit(url)
    return pymysql.connect(host=parts.hostname, port=parts.port, user=parts.username, database=parts.path[1:])


@pytest.mark.parametrize("name", ["postgres", "mysql"])
def test_held_server_connection_is_given_back(name):
    con = _held(name)
    table = unique()
    quoted = f'"{table}"' if name == "postgres" else f"`{table}`"
    rows = frame(60)[["x 1", "x2", "colour", "label"]].astype(object).values.tolist()
    try:
        with con.cursor() as cur:
            if name == "postgres":
                cur.execute("SET jit = on")
                cur.execute(f'CREATE TABLE "{table}" ("x 1" float8, x2 float8, colour text, label text)')
                cur.executemany(f'INSERT INTO "{table}" VALUES (%s, %s, %s, %s)', rows)
                cur.execute("SHOW jit")
            else:
                cur.execute(f"CREATE TABLE `{table}` (`x 1` DOUBLE, x2 DOUBLE, colour TEXT, label TEXT)")
                cur.executemany(f"INSERT INTO `{table}` VALUES (%s, %s, %s, %s)", rows)
                cur.execute("SELECT @@SESSION.optimizer_switch")
            setting = cur.fetchone()[0]
        con.commit()
        autocommit = con.autocommit if name == "postgres" else con.get_autocommit()
        model = sqlgrad.train(table, "label", db=con, **SETTINGS)
        with pytest.raises(UsageError, match="outlive"):
            sqlgrad.predict_query(model, frame(5), db=con)
        assert sqlgrad.evaluate(model, table, db=con)["n"] == 60
        expect = sqlgrad.train(table, "label", db=URLS[name], **SETTINGS)
        np.testing.assert_allclose(model.weights[0][0], expect.weights[0][0], rtol=1e-12)
        with con.cursor() as cur:
            cur.execute("SHOW jit" if name == "postgres" else "SELECT @@SESSION.optimizer_switch")
            assert cur.fetchone()[0] == setting
        assert (con.autocommit if name == "postgres" else con.get_autocommit()) == autocommit
        # a transaction of the caller's is refused, not committed
        with con.cursor() as cur:
            cur.execute(f"INSERT INTO {quoted} VALUES (0, 0, %s, %s)", ("red", "yes"))
        with pytest.raises(UsageError, match="inside a transaction"):
            sqlgrad.train(table, "label", db=con, iterations=1)
        con.rollback()
    finally:
        with contextlib.suppress(Exception):
            con.rollback()
        with contextlib.suppress(Exception), con.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {quoted}")
            con.commit()
        con.close()


def test_unknown_connection_objects_are_refused():
    with pytest.raises(EngineError, match="cannot use a object"):
        sqlgrad.connect(object())


def test_duckdb_settings_in_the_url(tmp_path):
    with sqlgrad.connect(f"duckdb:///{tmp_path / 'b.db'}?memory_limit=100MB&threads=1") as eng:
        limit, threads = eng.query("SELECT current_setting('memory_limit'), current_setting('threads')")[0]
        assert threads == 1 and limit.startswith(("95", "100"))
        # one thread: nothing to gain from stepwise's parallel statements, recursive stays auto's choice
        assert eng.capabilities.stepwise_from_rows is None
        model = sqlgrad.train(frame(), "label", features=["x 1", "x2"], db=eng, iterations=3)
    assert model.training["engine"] == "duckdb"


def test_duckdb_with_threads_keeps_the_stepwise_rule():
    with sqlgrad.connect("duckdb://?threads=2") as eng:
        assert eng.capabilities.stepwise_from_rows == 300_000
