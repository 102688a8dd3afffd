"""User-facing errors: the CLI prints them on one line and exits with code 2, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (a file, a flag, a value). Printed without a traceback."""


class DataError(UserError):
    """A trajectory source that cannot be read, located by file, row and step."""

    def __init__(self, message: str, *, source: str | None = None, row: int | None = None,
                 step: int | None = None):
        self.message, self.source, self.row, self.step = message, source, row, step
        super().__init__(self.located())

    def located(self) -> str:
        where = [p for p in (self.source,
                             None if self.row is None else f"row {self.row}",
                             None if self.step is None else f"step {self.step}") if p]
        return ": ".join([*where, self.message])

    def at(self, *, source: str | None = None, row: int | None = None) -> DataError:
        """The same error with the location filled in where it was missing."""
        return DataError(self.message, source=self.source or source,
                         row=self.row if self.row is not None else row, step=self.step)


class FormatViolation(ValueError):
    """A policy completion that breaks the required output format (reward -1)."""
