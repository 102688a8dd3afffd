"""Exceptions raised by cronexpr."""


class CronError(Exception):
    """Base class for cronexpr errors."""


class CronSyntaxError(CronError, ValueError):
    """An expression or one of its fields could not be parsed."""

    def __init__(self, message, field=None):
        self.field = field
        if field is not None:
            message = f"{field}: {message}"
        super().__init__(message)
