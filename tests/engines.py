"""Engines the cross-engine tests run on, and how to reach them.

Server engines (the machine's PostgreSQL and MariaDB) are required in CI (``CI=true``): a server that
does not answer fails there; elsewhere the tests skip with the reason.
"""

from __future__ import annotations

import os
import uuid

import pytest

from sqlgrad.engines import Engine, connect
from sqlgrad.errors import SqlgradError

URLS = {
    "duckdb": "duckdb://",
    "sqlite": "sqlite://",
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


def open_engine(name: str) -> Engine:
    try:
        eng = connect(URLS[name])
    except SqlgradError as err:
        if name in SERVERS and os.environ.get("CI", "").lower() != "true":
            pytest.skip(f"{name} server not reachable ({err}); it is required in CI")
        raise
    if name in _BOUNDS:
        eng.execute(_BOUNDS[name])
    return eng


def unique(prefix: str = "sgtest") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
