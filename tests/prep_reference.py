"""A plain numpy/Python version of sqlgrad's feature preparation, written from its documentation, to hold
the SQL against: imputation values, standardisation, one-hot encoding, and folding into the first layer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np


def mode(values: Sequence) -> object:
    """The most frequent non-NULL value; ties go to the smallest value."""
    counts = Counter(v for v in values if v is not None)
    top = max(counts.values())
    return min(v for v, n in counts.items() if n == top)


def top_categories(values: Sequence, limit: int) -> tuple[list, bool]:
    """The ``limit`` most frequent values (ties by value order) and whether others remain."""
    counts = Counter(v for v in values if v is not None)
    ordered = sorted(counts, key=lambda v: (-counts[v], v))
    return ordered[:limit], len(ordered) > limit


def fill_value(values: Sequence, strategy: str) -> float:
    present = np.array([v for v in values if v is not None], dtype=float)
    if strategy == "mean":
        return float(np.mean(present))
    if strategy == "median":
        return float(np.median(present))
    return float(mode([float(v) for v in values if v is not None]))


def inputs(data: dict[str, Sequence], preps, standardized: bool = False) -> np.ndarray:
    """The network's input matrix for raw ``data`` columns under a model's ``preprocessing``.

    A NULL without a fill gives NaN inputs (SQL gives NULL)."""
    cols: list[np.ndarray] = []
    for p in preps:
        raw = list(data[p.column])
        vals = [p.fill if v is None else v for v in raw]
        if p.kind == "numeric":
            x = np.array([np.nan if v is None else float(v) for v in vals])
            if standardized and p.mean is not None:
                x = (x - p.mean) / p.std
            cols.append(x)
        elif p.kind == "boolean":
            cols.append(np.array([np.nan if v is None else float(bool(v)) for v in vals]))
        else:
            for c in p.categories:
                cols.append(np.array([np.nan if v is None else float(v == c) for v in vals]))
            if p.other:
                cats = set(p.categories)
                cols.append(np.array([np.nan if v is None else float(v not in cats) for v in vals]))
    return np.column_stack(cols)


def fold(weights, preps):
    """Fold each standardised input's (mean, std) into the first layer: W/std and b - mean*W/std."""
    w0, b0 = np.array(weights[0][0], float), np.array(weights[0][1], float)
    k = 0
    for p in preps:
        if p.mean is not None:
            w0[k] = 0.0 if p.constant else w0[k] / p.std  # a constant column learnt nothing
            b0 = b0 - p.mean * w0[k]
        k += p.width
    return [(w0, b0), *[(np.array(w, float), np.array(b, float)) for w, b in weights[1:]]]
