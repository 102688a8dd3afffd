"""Exception types raised by configlite."""


class ConfigError(Exception):
    """Base class for every error raised by configlite."""


class ParseError(ConfigError):
    """Raised when configuration text is malformed.

    The offending line number (1-based) is kept in :attr:`lineno`.
    """

    def __init__(self, message, lineno=None):
        self.lineno = lineno
        if lineno is not None:
            message = f"line {lineno}: {message}"
        super().__init__(message)


class InterpolationError(ConfigError):
    """Raised when a ``${...}`` reference cannot be resolved."""


class ConversionError(ConfigError, ValueError):
    """Raised when a value cannot be converted to the requested type."""
