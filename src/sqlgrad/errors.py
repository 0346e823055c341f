"""The one error root of sqlgrad.

Every error that a user can cause (bad options, missing tables, a corrupt model file, an engine that
refuses a query) is a :class:`SqlgradError`. The CLI prints its message on one line and exits with
``exit_code``; anything else reaching the user is a bug.

>>> try:
...     raise ColumnNotFoundError("column 'x9' is not in table 'points'")
... except SqlgradError as err:
...     print(err.exit_code, err)
2 column 'x9' is not in table 'points'
"""

from __future__ import annotations


class SqlgradError(Exception):
    """Root of every error sqlgrad raises on purpose."""

    exit_code: int = 1


class UsageError(SqlgradError):
    """Options or arguments that cannot work together or have invalid values."""

    exit_code = 2


class SpecError(UsageError):
    """A model specification that is not valid (layer sizes, activation, head, hyperparameters)."""


class DataError(SqlgradError):
    """The data cannot be trained on or scored as asked (missing columns, NULLs, a single class...)."""

    exit_code = 2


class TableNotFoundError(DataError):
    """A table, view or file named by the user does not exist."""


class ColumnNotFoundError(DataError):
    """A column named by the user (or by a model) is not in the data."""


class ModelFileError(SqlgradError):
    """A model or initial-weights file that cannot be read, is corrupt, or is of another version."""

    exit_code = 2


class EngineError(SqlgradError):
    """The database engine failed: bad URL, server not answering, or a query refused."""

    exit_code = 3


class MissingDriverError(EngineError):
    """The Python driver for an engine is not installed."""


class MissingExtraError(UsageError):
    """An optional extra that a feature needs is not installed (matplotlib for ``--plot``)."""


class TrainingError(SqlgradError):
    """Training failed: divergence (NaN or infinite loss) or an engine that stopped early."""

    exit_code = 4
