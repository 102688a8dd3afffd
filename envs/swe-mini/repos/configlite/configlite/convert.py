"""Conversion of raw string values to Python types."""

import re

from .errors import ConversionError

TRUE_WORDS = frozenset({"1", "yes", "true", "on"})
FALSE_WORDS = frozenset({"0", "no", "false", "off"})

#: Seconds per duration unit.
DURATION_UNITS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
}

_NUMBER = r"\d+(?:\.\d+)?"
_DURATION_PART_RE = re.compile(rf"({_NUMBER})(m|ms|s|h|d|w)")
_DURATION_RE = re.compile(rf"(?:{_NUMBER}(?:m|ms|s|h|d|w))+")


def to_int(value):
    """Convert *value* to ``int`` (underscores are allowed: ``1_000``)."""
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConversionError(f"not an integer: {value!r}") from None


def to_float(value):
    """Convert *value* to ``float``."""
    try:
        return float(str(value).strip())
    except ValueError:
        raise ConversionError(f"not a number: {value!r}") from None


def to_bool(value):
    """Convert yes/no, on/off, true/false or 1/0 (any case) to ``bool``."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConversionError(f"not a boolean: {value!r}")


def to_list(value, sep=","):
    """Split *value* on *sep* and on newlines, dropping empty items."""
    items = []
    for line in str(value).splitlines():
        items.extend(part.strip() for part in line.split(sep))
    return [item for item in items if item]


def parse_duration(value):
    """Return the number of seconds in a duration such as ``"1h30m"``.

    A plain number is taken as seconds.  Units: ms, s, m, h, d, w.
    """
    text = str(value).strip().lower().replace(" ", "")
    if not text:
        raise ConversionError("empty duration")
    try:
        return float(text)
    except ValueError:
        pass
    if not _DURATION_RE.fullmatch(text):
        raise ConversionError(f"not a duration: {value!r}")
    total = 0.0
    for amount, unit in _DURATION_PART_RE.findall(text):
        total += float(amount) * DURATION_UNITS[unit]
    return total
