"""Golden SQL files for the engines this machine cannot reach (BigQuery, Trino) and for the scripted
forms: the article's 2-2-2 network (``examples/article/init.json``, lr 2.0, L2 1e-3) with 10 iterations,
rendered by each adapter exactly as it would send it (``tests/golden/*.sql``).

Each test compares the generated SQL with its file, then parses every statement back with sqlglot in
the engine's dialect. After an intended change of the generated SQL, regenerate the files and review
the diff::

    SQLGRAD_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py
"""

from __future__ import annotations

import os

import pytest
import sqlglot
from sqlglot import exp

from fakes import FakeBigQueryConnection, FakeTrinoConnection
from sqlgrad.engines.bigquery import BigQueryEngine
from sqlgrad.engines.postgres import PostgresEngine
from sqlgrad.engines.trino import TrinoEngine
from sqlgrad.model import Model
from sqlgrad.optim import GradientDescent
from sqlgrad.plans import PLANS, PlanInput, TrainingProgram
from sqlgrad.spec import build_spec

HERE = os.path.dirname(__file__)
GOLDEN = os.path.join(HERE, "golden")
INIT = os.path.join(HERE, "..", "examples", "article", "init.json")
UPDATE = os.environ.get("SQLGRAD_UPDATE_GOLDEN", "") not in ("", "0")
ITERATIONS = 10
RUN = "sqlgrad_golden"

WRAPPER_PREFIXES = (
    "DECLARE ",
    "WHILE ",
    "SET ",
    "END WHILE;",
    "DO $",
    "BEGIN",
    "FOR ",
    "END LOOP;",
    "END",
    "$",
)
"""Lines of the scripted forms that are procedural wrapper, not SQL statements."""


def engine(name: str):
    if name == "bigquery":
        return BigQueryEngine(
            "bigquery://golden-project/golden_dataset",
            connection=FakeBigQueryConnection("golden-project", "golden_dataset"),
        )
    if name == "trino":
        return TrinoEngine("trino://sqlgrad@localhost:8080/memory/default", connection=FakeTrinoConnection())
    eng = PostgresEngine.__new__(PostgresEngine)  # renders only: no connection (scripted SQL is printed)
    eng.url = "postgresql://postgres@127.0.0.1:5432/test"
    return eng


def article_input(eng) -> PlanInput:
    spec = build_spec(2, [2], ["relu"], "softmax", 2, 1e-3)
    program = TrainingProgram(spec, GradientDescent(2.0), eng.capabilities)
    return PlanInput(program, f"{RUN}_data", Model.load(INIT).weights, ITERATIONS, RUN)


def statements_sql(eng, statements: list[exp.Expression]) -> str:
    return "".join(eng.render(st, pretty=True) + ";\n\n" for st in statements).rstrip("\n") + "\n"


def generate(case: str) -> str:
    name, plan = case.split("_", 1)
    eng = engine(name)
    inp = article_input(eng)
    if plan == "scripted":
        return PLANS["scripted"].script(eng, inp, inp.table_name("state"), 0, ITERATIONS) + "\n"
    return statements_sql(eng, PLANS[plan].statements(inp))


CASES = {
    "bigquery_nested": "bigquery",
    "bigquery_stepwise": "bigquery",
    "bigquery_scripted": "bigquery",
    "trino_stepwise": "trino",
    "postgres_scripted": "postgres",
}


def dialect_of(case: str) -> str:
    return {"bigquery": "bigquery", "trino": "trino", "postgres": "postgres"}[CASES[case]]


@pytest.mark.parametrize("case", CASES)
def test_generated_sql_matches_the_golden_file(case):
    path = os.path.join(GOLDEN, f"{case}.sql")
    sql = generate(case)
    if UPDATE or not os.path.exists(path):
        if not UPDATE:
            pytest.fail(
                f"{path} is missing: run SQLGRAD_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py"
            )
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w") as fh:
            fh.write(sql)
    with open(path) as fh:
        assert sql == fh.read(), f"{case}: the generated SQL changed; see the module docstring to regenerate"


@pytest.mark.parametrize(
    "case",
    # parsing the 300 KB nested query takes sqlglot 25-50 s here
    [pytest.param(c, marks=pytest.mark.slow) if c.endswith("_nested") else c for c in CASES],
)
def test_golden_file_parses_back_in_its_dialect(case):
    with open(os.path.join(GOLDEN, f"{case}.sql")) as fh:
        text = fh.read()
    dialect = dialect_of(case)
    if case.endswith("_scripted"):
        lines = [ln for ln in text.splitlines() if ln.strip()]
        sql_lines = [ln for ln in lines if not ln.startswith(WRAPPER_PREFIXES)]
        assert len(sql_lines) == (3 if dialect == "bigquery" else 2)  # first-row delete, update, [losses]
        statements = [sqlglot.parse_one(ln.rstrip(";"), read=dialect) for ln in sql_lines]
        assert isinstance(statements[0], exp.Delete) and isinstance(statements[1], exp.Insert)
    else:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
        assert statements
    for st in statements:
        assert not any(isinstance(node, exp.Command) for node in st.walk()), "unparsed text in a statement"
        # every column and table name is quoted (the aliases of staged levels, s0, s1, ..., are sqlgrad's)
        names = [p for node in st.find_all(exp.Column, exp.Table) for p in node.parts]
        assert names and all(p.quoted for p in names if isinstance(p, exp.Identifier))
