"""``scripted``: the training loop as ONE script in the engine's own procedural language, so that the
iterations run inside the database with no round trip between them.

The engine declares its language in :attr:`~sqlgrad.engines.base.Capabilities.scripting`:

- ``plpgsql`` (PostgreSQL): a ``DO`` block whose ``FOR ... LOOP`` runs the update statement; a ``DO``
  block returns no rows, so the losses are read back from the state table afterwards.
- ``bigquery`` (BigQuery): a multi-statement query, ``DECLARE`` a counter, ``WHILE ... DO`` the update,
  and a final ``SELECT`` of the losses, which is what the job returns.

Every SQL statement inside the script is a sqlglot tree rendered by the engine (quoted identifiers,
DOUBLE literals); only the procedural wrapper (``DO``, ``BEGIN``, ``LOOP``, ``DECLARE``, ``WHILE``) is
text, and it holds nothing but a fixed counter name and the iteration count. The update reads the latest
row of the run's state table (``iteration = (SELECT MAX(iteration) ...)``) and appends the next one, so
the statement is the same at every iteration and needs no variable; the appended rows carry the loss
before each update, which is the history.

``auto`` never picks this plan: it is chosen by name (``--strategy scripted``) on an engine with
scripting, and refused with one clear line elsewhere.
"""

from __future__ import annotations

from sqlglot import exp

from ..data import create_temp_table
from ..engines.base import Capabilities, Engine
from ..errors import UsageError
from ..sqlexpr import col, num, table
from .base import Plan, PlanInput, Progress, keep_only
from .program import ITERATION, LOSS

LANGUAGES = ("plpgsql", "bigquery")
"""Scripting languages this plan writes (values of ``Capabilities.scripting``)."""

COUNTER = "sqlgrad_step"
"""The loop counter of the script (never a column name: prepared columns are ``x_i``, ``y``, ...)."""


class ScriptedPlan(Plan):
    name = "scripted"
    description = "the training loop as one script in the engine's language (PL/pgSQL, BigQuery scripting)"
    gathers = True

    # --- the SQL statements (sqlglot trees) -----------------------------------------------------------

    def step(self, inp: PlanInput, state: str) -> exp.Insert:
        """``INSERT INTO state <one update from the latest row of state>``."""
        latest = exp.select(exp.Max(this=col(ITERATION))).from_(table(state)).subquery()
        current = (
            exp.select(exp.Star()).from_(table(state)).where(exp.EQ(this=col(ITERATION), expression=latest))
        )
        return exp.insert(inp.program.step_select(inp.data, current), table(state))

    def first_only(self, state: str, start: int) -> exp.Delete:
        """``DELETE FROM state WHERE iteration <> start``: the loop starts from that row alone."""
        return exp.delete(table(state), where=exp.NEQ(this=col(ITERATION), expression=num(start)))

    def losses(self, state: str, start: int) -> exp.Select:
        """``(iteration, loss)`` of each update after ``start``: row ``k + 1`` holds the loss at ``k``."""
        return (
            exp.select(
                exp.Alias(
                    this=exp.Sub(this=col(ITERATION), expression=num(1)),
                    alias=exp.to_identifier(ITERATION, quoted=True),
                ),
                col(LOSS),
            )
            .from_(table(state))
            .where(exp.GT(this=col(ITERATION), expression=num(start)))
            .order_by(col(ITERATION))
        )

    def problem(self, caps: Capabilities, iterations: int) -> str | None:
        if caps.scripting not in LANGUAGES:
            return (
                "the scripted plan needs an engine with scripting (PostgreSQL PL/pgSQL, BigQuery); use "
                "--strategy stepwise"
            )
        return None

    def statements(self, inp: PlanInput) -> list[exp.Expression]:
        state = inp.table_name("state")
        return [
            create_temp_table(state, inp.program.init_select(inp.init)),
            self.first_only(state, 0),
            self.step(inp, state),
            self.losses(state, 0),
            exp.delete(table(state), where=exp.NEQ(this=col(ITERATION), expression=num(inp.iterations))),
        ]

    # --- the script -----------------------------------------------------------------------------------

    def script(self, engine: Engine, inp: PlanInput, state: str, start: int, count: int) -> str:
        """The script that runs updates ``start..start+count-1`` on the state table, in the engine's
        scripting language; each statement inside is rendered by ``engine``.

        >>> from sqlgrad.engines import connect
        >>> from sqlgrad.errors import UsageError
        >>> try:
        ...     ScriptedPlan().script(connect(), None, "s", 0, 1)
        ... except UsageError as err:
        ...     print(str(err)[:64])
        duckdb://: the scripted plan needs an engine with scripting (Pos
        """
        language = _language(engine)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise UsageError(f"a script runs at least one iteration, got {count!r}")
        first = engine.render(self.first_only(state, int(start)))
        update = engine.render(self.step(inp, state))
        if language == "plpgsql":
            body = "\n".join(
                [
                    "BEGIN",
                    f"{first};",
                    f"FOR {COUNTER} IN 1..{count} LOOP",
                    f"{update};",
                    "END LOOP;",
                    "END",
                ]
            )
            tag = _dollar_tag(body)
            return f"DO {tag}\n{body}\n{tag}"
        losses = engine.render(self.losses(state, int(start)))
        return "\n".join(
            [
                f"DECLARE {COUNTER} INT64 DEFAULT 0;",
                f"{first};",
                f"WHILE {COUNTER} < {count} DO",
                f"{update};",
                f"SET {COUNTER} = {COUNTER} + 1;",
                "END WHILE;",
                f"{losses};",
            ]
        )

    # --- running --------------------------------------------------------------------------------------

    def advance(
        self,
        engine: Engine,
        inp: PlanInput,
        state: str,
        start: int,
        count: int,
        progress: Progress | None = None,
    ) -> list[tuple[int, float]]:
        """One script for the ``count`` updates, then the losses read back and the state table left with
        the row of iteration ``start + count`` only."""
        language = _language(engine)
        if count <= 0:
            return []
        script = self.script(engine, inp, state, start, count)
        if language == "bigquery":
            rows = engine.query(script)  # the job returns its last statement's rows: the losses
        else:
            engine.execute(script)
            rows = engine.query(self.losses(state, start))
        keep_only(engine, state, start + count)
        history = [(int(i), loss) for i, loss in rows]
        if progress and history:
            progress(start + count, history[-1][1])
        return history


def _language(engine: Engine) -> str:
    problem = ScriptedPlan().problem(engine.capabilities, 1)
    if problem:
        raise UsageError(f"{engine.url}: {problem}")
    return str(engine.capabilities.scripting)


def _dollar_tag(body: str) -> str:
    """A dollar-quote tag that does not occur in ``body`` (``$sqlgrad$``, else ``$sqlgrad1$``, ...).

    >>> _dollar_tag("SELECT 1"), _dollar_tag("SELECT '$sqlgrad$'")
    ('$sqlgrad$', '$sqlgrad1$')
    """
    tag, k = "$sqlgrad$", 0
    while tag in body:
        k += 1
        tag = f"$sqlgrad{k}$"
    return tag
