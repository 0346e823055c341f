"""Property-based tests (hypothesis) on DuckDB and SQLite: odd identifiers (quotes, spaces, semicolons,
unicode, reserved words) and odd values (huge, tiny, negative zero, NULLs) in every position of a table.

Whatever the data, sqlgrad either trains and scores raw rows, or stops with one line; the user's table is
never changed and the run leaves no table behind. Kept fast: a few dozen small examples per test."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import prep_reference as P
import reference as R
from sqlgrad import predict, train
from sqlgrad.engines.duckdb import DuckDBEngine
from sqlgrad.engines.sqlite import SQLiteEngine
from sqlgrad.errors import SqlgradError
from sqlgrad.sqlexpr import table

ENGINES = {"duckdb": DuckDBEngine, "sqlite": SQLiteEngine}

SPECIAL_NAMES = [
    "select",
    "from",
    "order",
    "group by",
    'x"y',
    "it's",
    "a;b",
    "drop table t;--",
    " spaced out ",
    "naïve",
    "日本語",
    "☃",
    "1st",
    "$1",
    "?",
    "%s",
    "`tick`",
    "[br]",
]

names = st.one_of(
    st.sampled_from(SPECIAL_NAMES),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=10),
)

ODD_FLOATS = [0.0, -0.0, 1.0, -2.5, 1e300, -1e300, 1e-300, -1e-300, 5e-324, 123456789.125, 1e15]
floats = st.one_of(
    st.sampled_from(ODD_FLOATS),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
)
words = st.one_of(st.sampled_from(["", "it's", 'a "b"', "x; DROP TABLE t", "ü", "NULL"]), st.text(max_size=6))

FUZZ = settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def distinct(values: list[str]) -> bool:
    """Column names an engine keeps apart (both engines match names case-insensitively)."""
    folded = [v.casefold() for v in values]
    return len(set(folded)) == len(folded) and not any(v.startswith("__sg_") for v in folded)


def tables_of(engine) -> list[str]:
    if isinstance(engine, DuckDBEngine):
        return sorted(r[0] for r in engine.query("SELECT table_name FROM duckdb_tables()"))
    sql = "SELECT name FROM sqlite_temp_master UNION ALL SELECT name FROM sqlite_master"
    return sorted(r[0] for r in engine.query(sql))


def moderate(values: list) -> bool:
    return all(v is None or v == 0 or 1e-6 <= abs(v) <= 1e6 for v in values)


@st.composite
def tables(draw):
    """A table name, feature columns (numeric with NULLs, text with NULLs, boolean), a two-class label."""
    n = draw(st.integers(4, 12))
    kinds = draw(st.lists(st.sampled_from(["float", "text", "boolean"]), min_size=1, max_size=3))
    tname, target, *cols = draw(st.lists(names, min_size=2 + len(kinds), max_size=2 + len(kinds)))
    assume(distinct([target, *cols]))
    assume(not any(c.casefold().startswith(("predicted_", "probability_")) for c in cols))
    data: dict[str, list] = {}
    for c, kind in zip(cols, kinds, strict=True):
        if kind == "float":
            values = draw(st.lists(st.one_of(st.none(), floats), min_size=n, max_size=n))
        elif kind == "text":
            values = draw(st.lists(st.one_of(st.none(), words), min_size=n, max_size=n))
        else:
            values = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        assume(any(v is not None for v in values))
        data[c] = values
    labels = draw(st.lists(words, min_size=2, max_size=2, unique=True))
    y = [labels[i % 2] for i in range(n)]
    data[target] = draw(st.permutations(y))
    return tname, target, dict(zip(cols, kinds, strict=True)), data


def check(engine_name: str, case, standardize: bool) -> None:
    tname, target, kinds, data = case
    with ENGINES[engine_name]() as eng:
        eng.create_table(tname, [*kinds.items(), (target, "text")], list(zip(*data.values(), strict=True)))
        before = eng.query(f"SELECT * FROM {eng.render(table(tname))}")
        floats_ok = all(moderate(data[c]) for c, k in kinds.items() if k == "float")
        # SQLite cannot take a NUL character in a statement's text (a label or category literal)
        text_ok = not any(isinstance(v, str) and "\x00" in v for values in data.values() for v in values)
        try:
            model = train(
                tname, target, hidden=[2], iterations=2, impute="mean", standardize=standardize, db=eng
            )
            cols, rows = predict(model, tname, db=eng)
        except SqlgradError as err:
            assert "\n" not in str(err) and str(err)
            # moderate numbers, standardised: nothing can go wrong
            assert not (standardize and floats_ok and text_ok), str(err)
        else:
            assert model.features == list(kinds) and sorted(model.classes) == sorted(set(data[target]))
            assert len(rows) == len(before)
            got = {c: [r[k] for r in rows] for k, c in enumerate(cols)}
            for c, kind in kinds.items():
                if kind == "boolean":
                    got[c] = [None if v is None else bool(v) for v in got[c]]
            probs = np.array([r[-2:] for r in rows], dtype=float)
            if np.all(np.isfinite(probs)):
                np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-9)
                with np.errstate(all="ignore"):
                    want = R.predict_scores(
                        model.weights, model.activations, model.head, P.inputs(got, model.preprocessing)
                    )
                # the standardisation folded into the weights loses digits as |mean| / std grows
                ratio = max(
                    [abs(p.mean) / p.std for p in model.preprocessing or [] if p.mean and not p.constant],
                    default=0.0,
                )
                np.testing.assert_allclose(probs, want, rtol=1e-9, atol=1e-12 + 1e-13 * ratio)
                assert set(got[f"predicted_{target}"]) <= set(model.classes)
            else:
                assert not floats_ok
        after = eng.query(f"SELECT * FROM {eng.render(table(tname))}")
        assert after == before
        assert tables_of(eng) == [tname]


@FUZZ
@given(case=tables(), standardize=st.booleans())
def test_fuzz_duckdb(case, standardize):
    check("duckdb", case, standardize)


@FUZZ
@given(case=tables(), standardize=st.booleans())
def test_fuzz_sqlite(case, standardize):
    check("sqlite", case, standardize)


@FUZZ
@given(name=names, values=st.lists(floats, min_size=3, max_size=8))
def test_fuzz_numeric_target_regression(name, values):
    """A numeric target of odd values and an odd name: regression trains, or one line; nothing changes."""
    assume(name.casefold() not in ("x", "__sg_null") and not name.casefold().startswith("predicted_"))
    with DuckDBEngine() as eng:
        rows = [(float(i), v) for i, v in enumerate(values)]
        eng.create_table(name, [("x", "float"), (name, "float")], rows)
        try:
            model = train(name, name, task="regression", iterations=2, standardize=True, db=eng)
        except SqlgradError as err:
            assert "\n" not in str(err)
            assert not moderate(values), str(err)
        else:
            assert model.task == "regression" and model.preprocessing[0].mean == np.mean(
                np.arange(len(values))
            )
        assert eng.query(f"SELECT * FROM {eng.render(table(name))}") == rows
        assert tables_of(eng) == [name]
