"""Safety in a shared database (issue 5, item 5), on real engines: sqlgrad creates tables only under its
own prefix (or the run's name), never alters or drops a user's table, runs side by side without
colliding, and leaves nothing behind after a success or a failure.

Where the runs happen:

- DuckDB and SQLite: a database file in ``tmp_path``. DuckDB allows one writing process per file, so its
  concurrent runs are two connections of this process in two threads; SQLite's are two processes.
- PostgreSQL and MariaDB: a scratch database created for this module on the configured server and
  dropped at the end (``DROP DATABASE ... WITH (FORCE)`` on PostgreSQL), so that the before/after
  listings are exact even when other test suites use the shared ``test`` database at the same time.
  The runs are ``sqlgrad train`` processes (``sys.executable -m sqlgrad.cli``). On PostgreSQL they
  connect with ``application_name=<the test's tag>`` and a ``statement_timeout``, which is how leftover
  backends are found and terminated; on MariaDB every session in the scratch database but the test's
  own is killed after each test.

How tables are listed: PostgreSQL ``pg_class`` (``information_schema.tables`` hides the temporary tables
of other sessions), MariaDB ``information_schema.tables`` (10.11 lists no temporary tables: there, the
temporary tables a run creates are found by recording its ``CREATE`` statements), SQLite
``sqlite_master``/``sqlite_temp_master``, DuckDB ``duckdb_tables()``/``duckdb_views()``.

Every subprocess has a timeout (:data:`PROC_TIMEOUT`) and is killed by its process group id when it
passes it; every table a test creates is dropped when the test ends, even when it fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pytest
from sqlglot import exp

from conftest import assert_weights_close
from engines import _BOUNDS, STATEMENT_TIMEOUT_S, URLS, open_engine, release, unique
from sqlgrad import Model, train
from sqlgrad.engines import Engine, connect
from sqlgrad.errors import SqlgradError
from sqlgrad.sqlexpr import col, table

CLI = [sys.executable, "-m", "sqlgrad.cli"]
PROC_TIMEOUT = 300
"""Seconds any subprocess, thread or wait of this module may take before it is killed and fails."""
ROWS = 240
COLUMNS = [("a", "float"), ("b", "float"), ("c", "float"), ("label", "text"), ("t", "float")]
KINDS = ["duckdb", "sqlite", "postgres", "mysql"]
ITERATIONS = {
    # (engine, strategy) -> updates: a few tenths of a second of training alone (measured). On SQLite and
    # MariaDB ``auto`` is the stepwise plan, so stepwise is covered there by ``auto``.
    ("duckdb", "auto"): 300,
    ("duckdb", "stepwise"): 15,
    ("duckdb", "long"): 12,
    ("sqlite", "auto"): 300,
    ("sqlite", "long"): 25,
    ("postgres", "auto"): 400,
    ("postgres", "stepwise"): 150,
    ("postgres", "long"): 15,
    ("mysql", "auto"): 150,
    ("mysql", "long"): 8,
}
PLANS = {"duckdb": "recursive", "sqlite": "stepwise", "postgres": "recursive", "mysql": "stepwise"}
"""The plan ``auto`` picks for this module's small network on each engine."""
RUN_SUFFIXES = ("meta", "checkpoint", "history", "best")
"""A named run's tables (``docs/training.md``, :class:`sqlgrad.plans.driver.RunStore`)."""


def user_rows() -> list[tuple]:
    """The user's data: three features, a text label and a numeric column ``t`` (a regression target)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, 3))
    label = np.where(X[:, 0] * X[:, 1] + 0.3 * X[:, 2] > 0, "yes", "no")
    t = X[:, 0] - 2 * X[:, 1] + 0.1 * rng.normal(size=ROWS)
    return [
        (float(a), float(b), float(c), str(lab), float(v))
        for (a, b, c), lab, v in zip(X, label, t, strict=True)
    ]


# --- the databases ------------------------------------------------------------------------------------


class Scratch:
    """One scratch database per server engine for this module, created on first use."""

    def __init__(self) -> None:
        self.made: dict[str, tuple[Engine, str]] = {}

    def database(self, kind: str) -> str:
        if kind not in self.made:
            eng = open_engine(kind)  # a server that does not answer: skip, or fail under CI=true
            name = unique("sgtest_safety")
            for attempt in range(5):  # PostgreSQL refuses while another session uses template1
                try:
                    eng.execute(f"CREATE DATABASE {name}")
                    break
                except SqlgradError:
                    if attempt == 4:
                        release(eng)
                        raise
                    time.sleep(0.5)
            self.made[kind] = (eng, name)
        return self.made[kind][1]

    def drop_all(self) -> None:
        for kind, (eng, name) in self.made.items():
            with contextlib.suppress(Exception):
                if kind == "postgres":
                    eng.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                else:
                    ids = eng.query(f"SELECT id FROM information_schema.processlist WHERE db = '{name}'")
                    for (pid,) in ids:
                        with contextlib.suppress(Exception):
                            eng.execute(f"KILL CONNECTION {int(pid)}")
                    eng.execute(f"DROP DATABASE IF EXISTS {name}")
            release(eng)
        self.made.clear()


@pytest.fixture(scope="module")
def scratch() -> Iterator[Scratch]:
    s = Scratch()
    try:
        yield s
    finally:
        s.drop_all()


@dataclass
class Db:
    """A database of one engine, the connection the test itself uses (``admin``) and what it started."""

    kind: str
    url: str
    """What the runs connect to (on PostgreSQL with the test's ``application_name``)."""
    admin_url: str
    tag: str
    """Unique per test: the prefix of every name the test chooses."""
    database: str | None = None
    admin: Engine | None = None
    procs: list[subprocess.Popen] = field(default_factory=list)
    baseline: set[str] = field(default_factory=set)

    @property
    def table(self) -> str:
        return f"{self.tag}_pts"

    def connect(self) -> Engine:
        eng = connect(self.admin_url)
        if self.kind in _BOUNDS:
            eng.execute(_BOUNDS[self.kind])
        return eng

    @property
    def eng(self) -> Engine:
        if self.admin is None:
            self.admin = self.connect()
        return self.admin

    @contextlib.contextmanager
    def offline(self) -> Iterator[None]:
        """No connection of this process open: a DuckDB file takes one process at a time."""
        if self.kind == "duckdb" and self.admin is not None:
            self.admin.close()
            self.admin = None
        yield

    def objects(self, eng: Engine | None = None) -> set[str]:
        """Every table and view of the database: ``name`` for a persistent one, ``temp:name`` for a
        temporary one (of any session on PostgreSQL; of ``eng``'s session on DuckDB and SQLite)."""
        eng = eng or self.eng
        if self.kind == "postgres":
            rows = eng.query(
                "SELECT c.relname, c.relpersistence = 't' FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg\\_toast%'"
            )
        elif self.kind == "mysql":
            rows = eng.query(
                "SELECT table_name, 0 FROM information_schema.tables WHERE table_schema = DATABASE()"
            )
        elif self.kind == "sqlite":
            rows = eng.query(
                "SELECT name, 0 FROM sqlite_master WHERE type IN ('table', 'view') "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' UNION ALL "
                "SELECT name, 1 FROM sqlite_temp_master WHERE type IN ('table', 'view')"
            )
        else:
            rows = eng.query(
                "SELECT table_name, temporary FROM duckdb_tables() WHERE NOT internal UNION ALL "
                "SELECT view_name, temporary FROM duckdb_views() WHERE NOT internal"
            )
        return {f"temp:{name}" if temp else str(name) for name, temp in rows}

    def sessions(self) -> list[int]:
        """Server sessions of the runs this test started (not the test's own connection)."""
        if self.kind == "postgres":
            rows = self.eng.query(f"SELECT pid FROM pg_stat_activity WHERE application_name = '{self.tag}'")
        elif self.kind == "mysql":
            rows = self.eng.query(
                "SELECT id FROM information_schema.processlist "
                f"WHERE db = '{self.database}' AND id <> CONNECTION_ID()"
            )
        else:
            return []
        return [int(r[0]) for r in rows]

    def stop_sessions(self, wait: float = 30.0) -> None:
        """Terminate (PostgreSQL) or kill (MariaDB) the runs' sessions and wait until they are gone."""
        if self.kind not in ("postgres", "mysql"):
            return
        deadline = time.monotonic() + wait
        while True:
            ids = self.sessions()
            if not ids:
                return
            for pid in ids:
                with contextlib.suppress(Exception):
                    if self.kind == "postgres":
                        self.eng.execute(f"SELECT pg_terminate_backend({pid})")
                    else:
                        self.eng.execute(f"KILL CONNECTION {pid}")
            if time.monotonic() > deadline:
                raise AssertionError(f"sessions {ids} of the test's runs did not end")
            time.sleep(0.1)

    def rows(self, name: str) -> list[tuple]:
        return sorted(self.eng.query(exp.select("*").from_(table(name))), key=repr)

    def drop(self, name: str) -> None:
        try:
            self.eng.drop_table(name)
        except SqlgradError:
            self.eng.execute(exp.Drop(this=table(name), kind="VIEW", exists=True))


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path: Path, scratch: Scratch) -> Iterator[Db]:
    kind = request.param
    tag = unique("sgtest")
    database = None
    if kind == "duckdb":
        url = admin_url = f"duckdb:///{tmp_path / 'safety.duckdb'}"
    elif kind == "sqlite":
        url = admin_url = f"sqlite:///{tmp_path / 'safety.sqlite'}"
    else:
        database = scratch.database(kind)
        admin_url = urlunsplit(urlsplit(URLS[kind])._replace(path=f"/{database}", query=""))
        url = admin_url
        if kind == "postgres":
            url += f"?application_name={tag}&options=-c%20statement_timeout%3D{STATEMENT_TIMEOUT_S}s"
    d = Db(kind, url, admin_url, tag, database)
    d.baseline = d.objects()
    user_table(d.eng, d.table, COLUMNS, user_rows())
    try:
        yield d
    finally:
        for p in d.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)
        try:
            d.stop_sessions()
        finally:
            for name in d.objects() - d.baseline:
                if not name.startswith("temp:"):
                    with contextlib.suppress(Exception):
                        d.drop(name)
            if d.admin is not None:
                d.admin.close()


def user_table(eng: Engine, name: str, columns: list[tuple[str, str]], rows: list[tuple]) -> None:
    """A table of the user's (in one transaction: row by row, a database file syncs every row)."""
    with eng.transaction():
        eng.create_table(name, columns, rows)


def engines(*kinds: str, marks: dict[str, Any] | None = None) -> pytest.MarkDecorator:
    """Parametrize the ``db`` fixture over engines."""
    params = [pytest.param(k, id=k, marks=(marks or {}).get(k, ())) for k in kinds]
    return pytest.mark.parametrize("db", params, indirect=True)


# --- running sqlgrad ----------------------------------------------------------------------------------


def options(strategy: str, iterations: int, seed: int, lr: float = 0.3) -> dict[str, Any]:
    """A classification run on the user's table (the same through the API and the CLI)."""
    return {
        "target": "label",
        "exclude": ["t"],
        "hidden": [4],
        "lr": lr,
        "iterations": iterations,
        "seed": seed,
        "strategy": strategy,
        "standardize": True,
    }


def cli_args(db: Db, opts: dict[str, Any], out: Path, **extra: Any) -> list[str]:
    """``sqlgrad train`` arguments for ``opts`` (``--standardize`` is the CLI's default)."""
    flags = {
        "target": opts["target"],
        "exclude": ",".join(opts["exclude"]),
        "hidden": ",".join(map(str, opts["hidden"])),
        **{k: opts[k] for k in ("lr", "iterations", "seed", "strategy")},
        **extra,
    }
    args = ["train", db.table, "--db", db.url]
    for key, value in flags.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return [*args, "--quiet", "-o", str(out)]


def api_train(db: Db, opts: dict[str, Any], engine: Engine | None = None, **extra: Any) -> Model:
    o = dict(opts)
    return train(db.table, o.pop("target"), db=engine or db.url, **o, **extra)


def spawn(db: Db, args: list[str]) -> subprocess.Popen:
    p = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    db.procs.append(p)
    return p


def finish(p: subprocess.Popen, timeout: float = PROC_TIMEOUT) -> subprocess.CompletedProcess:
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=30)
        pytest.fail(f"{p.args} ran for more than {timeout} s and was killed: {err[-2000:]}")
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@dataclass
class Concurrent:
    results: list[Any]
    """CompletedProcess per process, or (model or exception, first progress time, last progress time)
    per thread."""
    peak_sessions: int = 0
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)


def run_processes(db: Db, argsets: list[list[str]]) -> Concurrent:
    """Start the CLI runs together; while they run, count the server sessions that are open at once."""
    with db.offline():
        procs, starts = [], []
        for args in argsets:
            procs.append(spawn(db, args))
            starts.append(time.monotonic())
        ends: list[float | None] = [None] * len(procs)
        peak = 0
        deadline = time.monotonic() + PROC_TIMEOUT
        while time.monotonic() < deadline:
            for i, p in enumerate(procs):
                if ends[i] is None and p.poll() is not None:
                    ends[i] = time.monotonic()
            if all(e is not None for e in ends):
                break
            if db.kind in ("postgres", "mysql"):
                peak = max(peak, len(db.sessions()))
            time.sleep(0.02)
        results = [finish(p, timeout=max(1.0, deadline - time.monotonic())) for p in procs]
    return Concurrent(results, peak, starts, [e if e is not None else time.monotonic() for e in ends])


def run_together(
    db: Db, argsets: list[list[str]], outs: list[Path], reset: Callable[[], None] = lambda: None
) -> list[Model]:
    """Run CLI trainings at once until they were seen training at the same time (the start of a
    process varies by up to a second on a loaded machine); ``reset`` undoes an attempt that did not
    overlap. Every run must succeed; returns their models."""
    windows: list[tuple[float, float]] = []
    for _ in range(3):
        got = run_processes(db, argsets)
        for proc in got.results:
            assert proc.returncode == 0, proc.stderr
        models = [Model.load(str(out)) for out in outs]
        if db.kind in ("postgres", "mysql"):
            if got.peak_sessions == len(argsets):  # all connected at once
                return models
        else:
            # each process trained during the last ``seconds`` before it ended (saving the model takes
            # about the same short time in all): those windows overlap
            windows = [(end - m.training["seconds"], end) for end, m in zip(got.ends, models, strict=True)]
            if min(w[1] for w in windows) - max(w[0] for w in windows) > 0.05:
                return models
        reset()
    pytest.fail(f"in 3 attempts the runs never trained at the same time {windows}")


def run_threads(db: Db, jobs: list[Callable[[Engine, Callable[[int, float], None]], Model]]) -> Concurrent:
    """Run ``job(engine, progress)`` in one thread each, each on its own connection to the database;
    every connection is checked for leftover temporary tables afterwards."""
    conns = [db.connect() for _ in jobs]
    results: list[Any] = [None] * len(jobs)

    def work(i: int) -> None:
        times: list[float] = []

        def progress(done: int, loss: float) -> None:
            times.append(time.monotonic())

        try:
            results[i] = (jobs[i](conns[i], progress), times[0], times[-1])
        except Exception as err:
            results[i] = (err, times[0] if times else None, times[-1] if times else None)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(len(jobs))]
    try:
        for th in threads:
            th.start()
        deadline = time.monotonic() + PROC_TIMEOUT
        for th in threads:
            th.join(timeout=max(0.0, deadline - time.monotonic()))
        if any(th.is_alive() for th in threads):
            for c in conns:
                with contextlib.suppress(Exception):
                    c.connection.interrupt()  # type: ignore[attr-defined]
            for th in threads:
                th.join(timeout=30)
            pytest.fail(f"a training thread ran for more than {PROC_TIMEOUT} s and was interrupted")
        for c in conns:
            left = {n for n in db.objects(c) if n.startswith("temp:")}
            assert not left, f"temporary tables left on a connection after its run: {left}"
    finally:
        for c in conns:
            c.close()
    return Concurrent(results)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """A refused or failed run: a non-zero exit and exactly one line on stderr, ``sqlgrad: error: ...``."""
    assert proc.returncode > 0, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sqlgrad: error: "), proc.stderr
    return lines[0]


def run_tables(name: str, best: bool = False) -> set[str]:
    return {f"{name}_{s}" for s in RUN_SUFFIXES if best or s != "best"}


_CREATE = re.compile(
    r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+|TEMP\s+)?(?:TABLE|VIEW)\s+[`\"]?([^`\"\s(]+)", re.I
)


def record_creates(engine: Engine) -> list[str]:
    """The names of every table and view ``engine`` is asked to create from now on."""
    created: list[str] = []
    execute = engine._execute  # type: ignore[attr-defined]

    def spy(sql: str) -> Any:
        created.extend(_CREATE.findall(sql))
        return execute(sql)

    engine._execute = spy  # type: ignore[attr-defined]
    return created


# --- 1. two trainings at once -------------------------------------------------------------------------


def engine_strategies() -> pytest.MarkDecorator:
    params = [pytest.param(k, s, id=f"{k}-{s}") for k, s in ITERATIONS]
    return pytest.mark.parametrize(("db", "strategy"), params, indirect=["db"])


@engine_strategies()
def test_two_runs_at_once_each_equal_the_run_alone(db: Db, strategy: str, tmp_path: Path) -> None:
    n = ITERATIONS[(db.kind, strategy)]
    opts = [options(strategy, n, seed=1), options(strategy, n, seed=2, lr=0.2)]
    before = db.objects()
    alone = [api_train(db, o) for o in opts]  # the same runs, one after the other
    assert db.objects() == before, "a successful run left tables behind"
    assert not np.allclose(alone[0].weights[0][0], alone[1].weights[0][0])  # the check can tell them apart
    if db.kind == "duckdb":
        for _ in range(3):  # a thread can start late on a loaded machine: try again until they overlap
            got = run_threads(db, [lambda e, p, o=o: api_train(db, o, e, progress=p) for o in opts])
            models = []
            for model, _, _ in got.results:
                assert isinstance(model, Model), model
                models.append(model)
            (_, a0, a1), (_, b0, b1) = got.results
            if max(a0, b0) < min(a1, b1):
                break
        else:
            pytest.fail("in 3 attempts the two trainings never overlapped in time")
    else:
        outs = [tmp_path / f"run{i}.json" for i in range(2)]
        models = run_together(db, [cli_args(db, o, out) for o, out in zip(opts, outs, strict=True)], outs)
    plan = PLANS[db.kind] if strategy == "auto" else strategy
    for m, ref in zip(models, alone, strict=True):
        assert m.training["strategy"] == ref.training["strategy"] == plan
        assert m.training["iterations"] == n
        assert_weights_close(m.weights, ref.weights, rtol=1e-12)
    assert db.objects() == before, "the concurrent runs left tables behind"


def _named(db: Db, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A stepwise run as long as the module's stepwise runs on this engine, in three chunks: checkpoints
    during the run, and early stopping that never stops, so that ``<name>_best`` exists too."""
    n = ITERATIONS.get((db.kind, "stepwise"), ITERATIONS[(db.kind, "auto")])
    return options("stepwise", n, seed), {
        "checkpoint_every": n // 3,
        "eval_every": n // 3,
        "early_stopping": 1000,
    }


def _check_run_tables(db: Db, name: str, n: int, seed: int) -> None:
    """A finished named run's tables hold its own checkpoint, history and settings, once."""
    top = exp.select(exp.Max(this=col("iteration"))).from_(table(f"{name}_checkpoint"))
    assert db.eng.scalar(top) == n
    iterations = [r[0] for r in db.eng.query(exp.select(col("iteration")).from_(table(f"{name}_history")))]
    assert sorted(iterations) == list(range(n))
    config = json.loads(db.rows(f"{name}_meta")[0][0])
    assert config["seed"] == seed


@engines(*KINDS)
def test_two_named_runs_at_once(db: Db, tmp_path: Path) -> None:
    """Two runs with different names at once: both work, each keeps exactly its documented tables."""
    (o1, extra), (o2, _) = _named(db, 1), _named(db, 2)
    opts, n = [o1, o2], o1["iterations"]
    refs = [f"{db.tag}_ref{i}" for i in range(2)]
    alone = [api_train(db, o, name=r, **extra) for o, r in zip(opts, refs, strict=True)]
    for r in refs:
        for t in run_tables(r, best=True):
            db.drop(t)
    before = db.objects()
    names = [f"{db.tag}_run{i}" for i in range(2)]
    if db.kind == "duckdb":
        got = run_threads(
            db,
            [
                lambda e, p, o=o, nm=nm: api_train(db, o, e, progress=p, name=nm, **extra)
                for o, nm in zip(opts, names, strict=True)
            ],
        )
        models = [r[0] for r in got.results]
        for m in models:
            assert isinstance(m, Model), m
    else:
        outs = [tmp_path / f"run{i}.json" for i in range(2)]
        argsets = [
            cli_args(db, o, out, name=nm, **extra) for o, out, nm in zip(opts, outs, names, strict=True)
        ]

        def reset() -> None:
            for t in run_tables(names[0], best=True) | run_tables(names[1], best=True):
                db.drop(t)

        models = run_together(db, argsets, outs, reset)
    for m, ref in zip(models, alone, strict=True):
        assert_weights_close(m.weights, ref.weights, rtol=1e-12)
    assert db.objects() - before == run_tables(names[0], best=True) | run_tables(names[1], best=True)
    assert before <= db.objects()
    for nm, o in zip(names, opts, strict=True):
        _check_run_tables(db, nm, n, o["seed"])


@engines(*KINDS)
def test_same_name_twice_at_once_one_run_wins(db: Db, tmp_path: Path) -> None:
    """Two runs with the same name at once: one trains (exactly as alone), the other is refused with one
    error line, and the run's tables are the winner's alone."""
    (o1, extra), (o2, _) = _named(db, 1), _named(db, 2)
    opts, n = [o1, o2], o1["iterations"]
    alone = [api_train(db, o) for o in opts]
    before = db.objects()
    name = f"{db.tag}_same"
    if db.kind == "duckdb":
        got = run_threads(
            db, [lambda e, p, o=o: api_train(db, o, e, progress=p, name=name, **extra) for o in opts]
        )
        outcomes = [r[0] for r in got.results]
        won = [i for i, m in enumerate(outcomes) if isinstance(m, Model)]
        assert len(won) == 1, outcomes
        loser = outcomes[1 - won[0]]
        assert isinstance(loser, SqlgradError), repr(loser)
        winner = outcomes[won[0]]
    else:
        outs = [tmp_path / f"run{i}.json" for i in range(2)]
        argsets = [cli_args(db, o, out, name=name, **extra) for o, out in zip(opts, outs, strict=True)]
        got = run_processes(db, argsets)
        won = [i for i, p in enumerate(got.results) if p.returncode == 0]
        assert len(won) == 1, [(p.returncode, p.stderr) for p in got.results]
        one_error_line(got.results[1 - won[0]])
        assert not outs[1 - won[0]].exists()
        winner = Model.load(str(outs[won[0]]))
    assert_weights_close(winner.weights, alone[won[0]].weights, rtol=1e-12)
    assert db.objects() - before == run_tables(name, best=True) and before <= db.objects()
    _check_run_tables(db, name, n, opts[won[0]]["seed"])


# --- 2. nothing left after a success or a failure -----------------------------------------------------

DIVERGED = "diverged|out of range|overflow"
"""A divergence: sqlgrad's own check, or the server's refusal of an overflowing double."""
DECOYS = [f"sqlgrad_abc123def456_{s}" for s in ("data", "train", "batches", "state", "meta", "history")]
"""User tables named like sqlgrad's own work and run tables."""


@engine_strategies()
def test_work_tables_dropped_on_the_users_connection(db: Db, strategy: str) -> None:
    """On a connection the user holds (the session goes on), a run drops every table it created, after a
    success and after a failure mid-way (a divergence, once its work tables exist); it creates tables
    only under its ``sqlgrad_`` prefix or, for a named run, the run's name; user tables named like its
    own are left as they are."""
    for name in DECOYS:
        user_table(db.eng, name, [("v", "integer"), ("note", "text")], [(1, "mine"), (2, "also mine")])
    eng = db.connect()
    try:
        created = record_creates(eng)
        before = db.objects(eng)
        extra = {"batch_size": 70, "validation": 0.25, "early_stopping": 1000, "eval_every": 2}
        opts = options(strategy, min(ITERATIONS[(db.kind, strategy)], 12), seed=3)
        api_train(db, opts, eng, **extra)
        assert db.objects(eng) == before
        suffixes = {name[name.rfind("_") :] for name in created}
        assert {"_data", "_train", "_valid", "_batches", "_state", "_best"} <= suffixes, created
        assert all(name.startswith("sqlgrad_") for name in created), created

        name = f"{db.tag}_held"
        api_train(db, opts, eng, name=name, **extra)
        assert db.objects(eng) - before == run_tables(name, best=True) and before <= db.objects(eng)
        assert all(n.startswith(("sqlgrad_", f"{name}_")) for n in created), created
        for t in run_tables(name, best=True):
            db.drop(t)

        done = len(created)
        with pytest.raises(SqlgradError, match=DIVERGED):
            train(db.table, "t", exclude=["label"], lr=1e6, iterations=300, strategy=strategy, db=eng)
        assert any(n.endswith("_state") for n in created[done:]), "the run failed before training"
        assert db.objects(eng) == before
        assert all(n.startswith(("sqlgrad_", f"{name}_")) and n not in DECOYS for n in created), created
        left = [n for n in set(created) if n.startswith("sqlgrad_") and eng.table_exists((n,))]
        assert not left, f"tables a run created and did not drop: {left}"
        assert eng.scalar("SELECT 1") == 1  # the user's session is still usable
    finally:
        eng.close()
    for name in DECOYS:
        assert db.rows(name) == [(1, "mine"), (2, "also mine")]


def _wait_for(what: str, check: Callable[[], Any], proc: subprocess.Popen, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        if proc.poll() is not None:
            pytest.fail(
                f"the run ended before {what}: {proc.returncode} {proc.stderr and proc.stderr.read()}"
            )
        time.sleep(0.05)
    pytest.fail(f"no {what} within {timeout} s")


def _temp_tables(db: Db) -> set[str]:
    return {n for n in db.objects() if n.startswith("temp:")}


@engines("postgres")
def test_postgres_session_terminated_mid_statement(db: Db, tmp_path: Path) -> None:
    """A server-side failure: the backend of a run is terminated (``pg_terminate_backend``) while its
    recursive training statement runs. The run fails with one error line; its temporary tables go with
    the session; it never had a plain work table."""
    before = db.objects()
    out = tmp_path / "x.json"
    proc = spawn(db, cli_args(db, options("auto", 1_000_000, seed=1), out))
    running = (
        f"SELECT pid FROM pg_stat_activity WHERE application_name = '{db.tag}' "
        "AND state = 'active' AND query ILIKE '%WITH RECURSIVE%'"
    )
    pids = _wait_for("the training statement", lambda: db.eng.query(running), proc)
    during = db.objects()
    assert during - before and all(n.startswith("temp:sqlgrad_") for n in during - before), during - before
    db.eng.execute(f"SELECT pg_terminate_backend({int(pids[0][0])})")
    line = one_error_line(finish(proc))
    assert "PostgresEngine" in line or "terminat" in line, line
    assert not out.exists()
    db.stop_sessions()
    assert db.objects() == before


@engines("postgres")
def test_postgres_sigkill_of_a_named_run(db: Db, tmp_path: Path) -> None:
    """``SIGKILL`` of ``sqlgrad train --name`` after some checkpoints: once its backend is gone, the
    database holds the user's tables and the run's documented tables, nothing else."""
    before = db.objects()
    name = f"{db.tag}_k"
    args = cli_args(db, options("stepwise", 1_000_000, seed=1), tmp_path / "x.json", name=name)
    proc = spawn(db, [*args[:-3], "--checkpoint-every", "5", *args[-3:]])
    reached = f'SELECT MAX("iteration") FROM "{name}_checkpoint"'

    def checkpointed() -> bool:
        with contextlib.suppress(SqlgradError):
            return (db.eng.scalar(reached) or 0) >= 10
        return False

    _wait_for("two checkpoints", checkpointed, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    assert finish(proc).returncode == -signal.SIGKILL
    db.stop_sessions()  # the backend may still be running the statement it had started
    assert db.objects() - before == run_tables(name) and before <= db.objects()
    assert not _temp_tables(db)


@engines("mysql")
def test_mariadb_connection_killed_mid_run(db: Db, tmp_path: Path) -> None:
    """A server-side failure on MariaDB: the run's connection is killed (``KILL CONNECTION``) during
    training. The run fails with one error line and leaves no table."""
    before = db.objects()
    out = tmp_path / "x.json"
    proc = spawn(db, cli_args(db, options("stepwise", 1_000_000, seed=1), out))
    training = (
        "SELECT id FROM information_schema.processlist "
        f"WHERE db = '{db.database}' AND id <> CONNECTION_ID() AND info LIKE 'INSERT INTO%'"
    )
    ids = _wait_for("a training statement", lambda: db.eng.query(training), proc)
    assert db.objects() == before  # no plain work table during the run either
    db.eng.execute(f"KILL CONNECTION {int(ids[0][0])}")
    one_error_line(finish(proc))
    assert not out.exists()
    db.stop_sessions()
    assert db.objects() == before


@engines("sqlite")
def test_sqlite_sigkill_mid_run(db: Db, tmp_path: Path) -> None:
    """``SIGKILL`` of an anonymous run on a SQLite file: its work tables were temporary (another
    connection never sees them), so the file holds exactly the user's tables."""
    before = db.objects()
    proc = spawn(db, cli_args(db, options("stepwise", 1_000_000, seed=1), tmp_path / "x.json"))
    time.sleep(2.0)  # imports (about 0.7 s), preparation, then training
    assert proc.poll() is None, finish(proc).stderr
    assert db.objects() == before
    os.killpg(proc.pid, signal.SIGKILL)
    assert finish(proc).returncode == -signal.SIGKILL
    assert db.objects() == before
    assert len(db.rows(db.table)) == ROWS


# --- 3. user tables named like a run's ----------------------------------------------------------------


@engines(*KINDS)
@pytest.mark.parametrize("suffix", RUN_SUFFIXES)
def test_named_run_refuses_a_user_table_of_its_names(db: Db, suffix: str) -> None:
    """A user's table ``<name>_<suffix>`` makes ``train(name=...)`` refuse, naming the run or the table,
    and the user's table is left exactly as it was, with no other table created."""
    name = f"{db.tag}_mine"
    mine = f"{name}_{suffix}"
    user_table(db.eng, mine, [("v", "integer"), ("note", "text")], [(1, "mine"), (2, "also mine")])
    before = db.objects()
    with pytest.raises(SqlgradError, match=re.escape(name)):
        api_train(db, options("stepwise", 12, seed=1), name=name, early_stopping=3)
    assert db.rows(mine) == [(1, "mine"), (2, "also mine")]
    assert [c.name for c in db.eng.describe(table(mine))] == ["v", "note"]
    assert db.objects() == before


@engines(*KINDS)
def test_cli_refuses_a_name_whose_history_table_is_the_users(db: Db, tmp_path: Path) -> None:
    """``sqlgrad train --name mine`` when the user's table ``mine_history`` exists: one error line that
    names it, a non-zero exit, no model file, and the user's table unchanged."""
    name = f"{db.tag}_mine"
    user_table(db.eng, f"{name}_history", [("v", "integer")], [(1,), (2,)])
    before = db.objects()
    out = tmp_path / "x.json"
    with db.offline():
        proc = finish(spawn(db, cli_args(db, options("stepwise", 12, seed=1), out, name=name)))
    line = one_error_line(proc)
    assert f"{name}_history" in line or repr(name) in line, line
    assert not out.exists()
    assert db.rows(f"{name}_history") == [(1,), (2,)]
    assert db.objects() == before


@engines(*KINDS)
def test_failing_named_run_keeps_a_user_table_named_like_its_best(db: Db) -> None:
    """A named run that diverges in its first chunk must not drop the user's ``<name>_best``."""
    name = f"{db.tag}_mine"
    user_table(db.eng, f"{name}_best", [("v", "integer")], [(1,), (2,)])
    before = db.objects()
    with pytest.raises(SqlgradError):
        train(
            db.table,
            "t",
            exclude=["label"],
            lr=100.0,
            iterations=300,
            strategy="stepwise",
            name=name,
            db=db.url,
        )
    assert db.objects() == before
    assert db.rows(f"{name}_best") == [(1,), (2,)]


@pytest.fixture
def forced_run_name(monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the next runs' prefix known (the real one is ``sqlgrad_`` + 48 random bits)."""
    name = f"sqlgrad_{unique('forced')}"
    monkeypatch.setattr(sys.modules["sqlgrad.train"], "new_run_name", lambda: name)
    return name


@engines(*KINDS)
def test_user_table_with_a_run_work_table_name_survives_a_run(db: Db, forced_run_name: str) -> None:
    """Even if a user's table had the name of a run's work table, a successful run would not touch it
    (the work table is temporary and shadows it)."""
    mine = f"{forced_run_name}_data"
    user_table(db.eng, mine, [("v", "integer")], [(1,), (2,)])
    api_train(db, options("stepwise", 5, seed=1))
    assert db.rows(mine) == [(1,), (2,)]


@engines(*KINDS)
def test_failing_run_drops_only_tables_it_created(db: Db, forced_run_name: str) -> None:
    """A run that fails before creating its work tables (the target column does not exist) must not drop
    a user's table that has one of their names: cleanup drops only temporary tables
    (``Engine.drop_work_table``)."""
    mine = f"{forced_run_name}_data"
    user_table(db.eng, mine, [("v", "integer")], [(1,), (2,)])
    with pytest.raises(SqlgradError, match="nosuch"):
        train(db.table, "nosuch", db=db.url, iterations=3)
    assert db.eng.table_exists((mine,)) and db.rows(mine) == [(1,), (2,)]
