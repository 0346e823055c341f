"""Figures of a model and a run, from numbers computed in SQL: ``--plot`` of ``evaluate`` and ``history``.

The counts of a confusion matrix come from one ``GROUP BY`` over the scoring query, a regression's
scatter from at most :data:`SCATTER_ROWS` rows sampled in SQL, a run's curves from its history table
``<RUN>_history``. Drawing needs matplotlib (``pip install 'sqlgrad[plot]'``); the SQL side does not.

>>> import numpy as np
>>> from sqlgrad.engines import connect
>>> eng = connect("duckdb://")
>>> _ = eng.execute("CREATE TABLE pts AS SELECT i / 10.0 AS x, CASE WHEN i >= 5 THEN 'hi' ELSE 'lo' END AS y "
...                 "FROM range(10) t(i)")
>>> m = Model(features=["x"], target="y", task="classification", head="sigmoid", activations=[],
...           weights=[(np.array([[10.0]]), np.array([-5.0]))], classes=["lo", "hi"])
>>> confusion_counts(eng, m, "pts")
(['lo', 'hi'], [[5, 0], [0, 5]])
>>> eng.close()
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from .engines import Engine
from .errors import DataError, MissingExtraError, TableNotFoundError, UsageError
from .model import Model
from .sqlexpr import alias, col, table

SCATTER_ROWS = 5000
"""A regression's scatter plot shows at most this many rows, sampled in SQL."""

HISTORY_COLUMNS = ("iteration", "epoch", "loss", "val_loss", "val_accuracy", "seconds")
"""Columns of a run's history table, in display order (all but ``iteration`` may be missing)."""


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` with the file-only Agg backend, or one clear error naming the extra."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise MissingExtraError("--plot needs matplotlib: pip install 'sqlgrad[plot]'") from err
    return plt


def _save(fig: Any, path: str) -> None:
    plt = require_matplotlib()
    try:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot write {path}: {getattr(err, 'strerror', None) or err}") from err
    finally:
        plt.close(fig)


# --- evaluate --plot -----------------------------------------------------------------------------------


def confusion_counts(engine: Engine, model: Model, data: str) -> tuple[list, list[list[int]]]:
    """``(labels, counts)``: ``counts[a][p]`` rows of actual label ``labels[a]`` predicted
    ``labels[p]``, from ``SELECT actual, predicted, COUNT(*) ... GROUP BY actual, predicted`` over the
    scoring query (rows with a NULL label or prediction are left out)."""
    from .train import predict_query

    query = predict_query(model, data, engine)
    actual, predicted = model.target, model.output_columns()[0]
    grouped = (
        exp.select(col(actual), col(predicted), alias(exp.Count(this=exp.Star()), "n"))
        .from_(query.subquery("scored"))
        .where(
            exp.and_(
                exp.Not(this=exp.Is(this=col(actual), expression=exp.Null())),
                exp.Not(this=exp.Is(this=col(predicted), expression=exp.Null())),
            )
        )
        .group_by(col(actual), col(predicted))
    )
    labels = model.class_labels()
    index = {_key(v): k for k, v in enumerate(labels)}
    counts = [[0] * len(labels) for _ in labels]
    for a, p, n in engine.query(grouped):
        if _key(a) not in index:
            raise DataError(f"label {a!r} of column {actual!r} is not one of the model's classes")
        counts[index[_key(a)]][index[_key(p)]] += int(n)
    return labels, counts


def _key(value: Any) -> Any:
    """Labels as the engines return them (SQLite and MariaDB give booleans as 0/1)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def regression_sample(
    engine: Engine, model: Model, data: str, limit: int = SCATTER_ROWS
) -> tuple[list[float], list[float], int]:
    """``(actual, predicted, n)``: at most ``limit`` rows drawn at random in SQL (``ORDER BY RANDOM()
    LIMIT``) when the data has more, and the number of rows with both values."""
    from .train import predict_query

    query = predict_query(model, data, engine)
    actual, predicted = model.target, model.output_columns()[0]
    both = exp.and_(
        exp.Not(this=exp.Is(this=col(actual), expression=exp.Null())),
        exp.Not(this=exp.Is(this=col(predicted), expression=exp.Null())),
    )
    scored = query.subquery("scored")
    n = int(engine.scalar(exp.select(exp.Count(this=exp.Star())).from_(scored.copy()).where(both.copy())))
    sample = exp.select(col(actual), col(predicted)).from_(scored).where(both)
    if n > limit:
        sample = sample.order_by(exp.Rand()).limit(limit)
    rows = engine.query(sample)
    return [float(a) for a, _ in rows], [float(p) for _, p in rows], n


def plot_confusion(labels: Sequence[Any], counts: Sequence[Sequence[int]], path: str, title: str) -> None:
    """A confusion matrix (actual rows, predicted columns) with the counts written in the cells."""
    plt = require_matplotlib()
    k = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * k, 1.0 + 0.6 * k) if k > 6 else (5, 4))
    image = ax.imshow(counts, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    names = [str(v) for v in labels]
    ax.set_xticks(range(k), names, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    top = max((max(r) for r in counts), default=0)
    for a in range(k):
        for p in range(k):
            value = counts[a][p]
            ax.text(p, a, str(value), ha="center", va="center", color="white" if value > top / 2 else "black")
    _save(fig, path)


def plot_regression(actual: Sequence[float], predicted: Sequence[float], path: str, title: str) -> None:
    """Predicted against actual values, with the line ``predicted = actual``."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(actual, predicted, s=6, alpha=0.5)
    if actual:
        lo, hi = min(min(actual), min(predicted)), max(max(actual), max(predicted))
        ax.plot([lo, hi], [lo, hi], color="grey", linewidth=1, linestyle="--")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(title)
    _save(fig, path)


# --- history -------------------------------------------------------------------------------------------


def history_table(run: str) -> str:
    """The history table of a run."""
    return f"{run}_history"


def read_history(engine: Engine, run: str) -> tuple[list[str], list[dict[str, Any]]]:
    """``(columns, rows)`` of ``<run>_history`` ordered by iteration: the known columns it has, in
    :data:`HISTORY_COLUMNS` order, then any other column it has. Non-finite numbers become None."""
    name = history_table(run)
    if not engine.table_exists([name]):
        raise TableNotFoundError(f"no run {run!r}: {name} is not in the database")
    present = [c.name for c in engine.describe(table(name))]
    if "iteration" not in present:
        raise DataError(f"{name} has no column 'iteration'; it is not a sqlgrad history table")
    columns = [c for c in HISTORY_COLUMNS if c in present] + [c for c in present if c not in HISTORY_COLUMNS]
    query = exp.select(*(col(c) for c in columns)).from_(table(name)).order_by(col("iteration"))
    rows = [dict(zip(columns, (_plain(v) for v in r), strict=True)) for r in engine.query(query)]
    return columns, rows


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    try:
        number = float(value)  # Decimal and numpy scalars
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return None
    return int(number) if number.is_integer() and not isinstance(value, float) else number


def plot_history(rows: Sequence[dict[str, Any]], path: str, title: str) -> None:
    """Loss (and validation loss) against iteration; validation accuracy on a second axis when any."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(7, 4))
    lines = []
    for column, style in (("loss", "-"), ("val_loss", "--")):
        points = [(r["iteration"], r[column]) for r in rows if r.get(column) is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            marker = "o" if column != "loss" and len(points) <= 50 else ""
            lines += ax.plot(xs, ys, style, marker=marker, markersize=3, label=column.replace("_", " "))
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    accuracy = [(r["iteration"], r["val_accuracy"]) for r in rows if r.get("val_accuracy") is not None]
    if accuracy:
        right = ax.twinx()
        xs, ys = zip(*accuracy, strict=True)
        marker = "o" if len(accuracy) <= 50 else ""
        lines += right.plot(xs, ys, ":", color="tab:green", marker=marker, markersize=3, label="val accuracy")
        right.set_ylabel("validation accuracy")
    if lines:
        ax.legend(lines, [ln.get_label() for ln in lines], loc="best")
    ax.set_title(title)
    _save(fig, path)
