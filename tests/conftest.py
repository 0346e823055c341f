"""Shared fixtures: an in-memory DuckDB engine and helpers to put numpy data into it."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

from sqlgrad.engines.duckdb import DuckDBEngine


@pytest.fixture
def engine():
    eng = DuckDBEngine()
    yield eng
    eng.close()


def load_arrays(engine: DuckDBEngine, name: str, columns: dict[str, np.ndarray]) -> None:
    """Create table ``name`` from equal-length numpy columns (exact doubles, integers or strings)."""
    names = list(columns)
    lists = [np.asarray(columns[c]).tolist() for c in names]
    select = ", ".join(f'unnest(${i + 1}) AS "{c}"' for i, c in enumerate(names))
    engine.connection.execute(f'CREATE TABLE "{name}" AS SELECT {select}', lists)


def make_classification(seed: int, n: int, d: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian features and labels from a random linear map (every class present)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.argmax(X @ rng.normal(size=(d, classes)) + 0.5 * rng.normal(size=(n, classes)), axis=1)
    y[:classes] = np.arange(classes)
    return X, y


def make_regression(seed: int, n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.sin(X @ rng.normal(size=d)) + 0.1 * rng.normal(size=n)
    return X, y


def assert_weights_close(got, want, rtol: float = 1e-9) -> None:
    """Every weight equal to a relative ``rtol`` (absolute floor scaled by the layer's largest weight)."""
    assert len(got) == len(want)
    for (gw, gb), (ww, wb) in zip(got, want, strict=True):
        scale = max(1e-300, float(np.max(np.abs(ww))), float(np.max(np.abs(wb), initial=0.0)))
        np.testing.assert_allclose(gw, ww, rtol=rtol, atol=rtol * 1e-3 * scale)
        np.testing.assert_allclose(gb, wb, rtol=rtol, atol=rtol * 1e-3 * scale)
