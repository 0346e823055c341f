"""sqlgrad: train multi-layer perceptrons in plain SQL, inside the database where the data lives.

>>> import sqlgrad
>>> eng = sqlgrad.connect("duckdb://")
>>> _ = eng.connection.execute("CREATE TABLE t AS SELECT i::DOUBLE AS x, 2 * i + 1 AS y FROM range(20) r(i)")
>>> m = sqlgrad.train("t", "y", task="regression", lr=0.005, iterations=200, db=eng)
>>> m.training["metrics"]["r2"] > 0.99
True
"""

from .engines import Engine, connect
from .errors import SqlgradError
from .model import Model
from .sources import Query
from .spec import ModelSpec, init_weights
from .train import create_view, evaluate, predict, predict_query, train

__version__ = "0.1.0"

__all__ = [
    "Engine",
    "Model",
    "ModelSpec",
    "Query",
    "SqlgradError",
    "connect",
    "create_view",
    "evaluate",
    "init_weights",
    "predict",
    "predict_query",
    "train",
]
