"""Engines the cross-engine tests run on, and how to reach them.

Server engines (the machine's PostgreSQL and MariaDB) are required in CI (``CI=true``): a server that
does not answer fails there; elsewhere the tests skip with the reason.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

from sqlgrad.engines import Engine, connect
from sqlgrad.errors import SqlgradError

URLS = {
    "duckdb": "duckdb://",
    "sqlite": "sqlite://",
    "spark": os.environ.get("SQLGRAD_TEST_SPARK", "spark://local[2]"),
    "postgres": os.environ.get("SQLGRAD_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
    "mysql": os.environ.get("SQLGRAD_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test"),
}
SERVERS = {"postgres", "mysql"}
STATEMENT_TIMEOUT_S = 300

# Session settings that bound every statement a test starts on a server.
_BOUNDS = {
    "postgres": f"SET statement_timeout = '{STATEMENT_TIMEOUT_S}s'",
    "mysql": f"SET SESSION max_statement_time = {STATEMENT_TIMEOUT_S}",
}


_SHARED: dict[str, Engine] = {}
"""Spark's JVM takes 15-30 s to start: one session serves every test (see :func:`release`)."""


def open_engine(name: str) -> Engine:
    if name in _SHARED:
        return _SHARED[name]
    try:
        eng = connect(URLS[name])
    except SqlgradError as err:
        if name in SERVERS and os.environ.get("CI", "").lower() != "true":
            pytest.skip(f"{name} server not reachable ({err}); it is required in CI")
        raise
    if name in _BOUNDS:
        eng.execute(_BOUNDS[name])
    if name == "spark":
        _SHARED[name] = eng
    return eng


def opened(name: str) -> Iterator[Engine]:
    """Fixture body: an engine whose ``created`` list of tables is dropped after the test."""
    engine = open_engine(name)
    created: list[str] = []
    engine.created = created  # type: ignore[attr-defined]
    yield engine
    for table in created:
        with contextlib.suppress(Exception):
            engine.drop_table(table)
    release(engine)


def release(engine: Engine) -> None:
    """Close an engine from :func:`open_engine` unless it is the shared one (closed at exit)."""
    if engine not in _SHARED.values():
        engine.close()


@atexit.register
def _close_shared() -> None:
    for eng in _SHARED.values():
        eng.close()


def unique(prefix: str = "sgtest") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
