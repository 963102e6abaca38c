"""Errors that end a run with a one-line message and a known exit code."""

from __future__ import annotations


class AuditError(Exception):
    """Base class: the message is shown to the user as one line, without a traceback."""

    exit_code = 2


class InputError(AuditError):
    """Unusable input: names the file and, where known, the row and column (exit code 2)."""

    def __init__(self, path: object, problem: str, *, row: int | None = None, column: str | None = None):
        where = str(path)
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {' '.join(problem.splitlines())}")  # values from the data may hold newlines
        self.path = str(path)
        self.row = row
        self.column = column


class ConfigError(AuditError):
    """An invalid configuration file or option (exit code 2)."""


class LLMError(AuditError):
    """The model could not be reached or used at all (exit code 3)."""

    exit_code = 3
