"""Parsing of individual cells and inference of column types.

Column types are named by short strings: ``"int"``, ``"float"``, ``"bool"``,
``"date"`` and ``"str"``.  Missing values (see :data:`NA_VALUES`) never
influence the inferred type and are converted to ``None``.
"""

from datetime import date

NA_VALUES = frozenset({"", "na", "n/a", "null", "none"})
TRUE_VALUES = frozenset({"true", "yes"})
FALSE_VALUES = frozenset({"false", "no"})

#: Order in which column types are tried; the first one that accepts every
#: non-missing value of a column wins.
TYPE_ORDER = ("int", "float", "bool", "date", "str")


def is_missing(text):
    """Return True if *text* denotes a missing value."""
    return text is None or text.strip().lower() in NA_VALUES


def parse_int(text):
    """Parse a plain decimal integer with an optional sign (``-12``, ``+3``).

    ``int()`` alone is too lenient for sniffing purposes (it accepts
    ``"1_000"`` and non-ASCII digits), so the text is checked first.
    """
    text = text.strip()
    if text.isascii() and text.isdigit():
        return int(text)
    raise ValueError(f"not an integer: {text!r}")


def parse_float(text):
    """Parse a decimal number; ``nan`` / ``inf`` spellings and digit
    separators (``1_000.5``) are rejected."""
    text = text.strip()
    if "_" in text or any(ch.isalpha() and ch not in "eE" for ch in text):
        raise ValueError(f"not a float: {text!r}")
    return float(text)


def parse_bool(text):
    """Parse ``true/false/yes/no`` (case-insensitive)."""
    lowered = text.strip().lower()
    if lowered in TRUE_VALUES:
        return True
    if lowered in FALSE_VALUES:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def parse_date(text):
    """Parse an ISO ``YYYY-MM-DD`` date."""
    text = text.strip()
    if len(text) != 10 or text[4] != "-" or text[7] != "-":
        raise ValueError(f"not an ISO date: {text!r}")
    return date.fromisoformat(text)


PARSERS = {
    "int": parse_int,
    "float": parse_float,
    "bool": parse_bool,
    "date": parse_date,
    "str": lambda text: text,
}


def parse_value(text):
    """Parse one cell with the first type that accepts it (``None`` if missing)."""
    if is_missing(text):
        return None
    for kind in TYPE_ORDER:
        try:
            return PARSERS[kind](text)
        except ValueError:
            continue
    return text  # pragma: no cover - "str" always succeeds


def _accepts(kind, values):
    parser = PARSERS[kind]
    for value in values:
        try:
            parser(value)
        except ValueError:
            return False
    return True


def infer_column_type(values):
    """Infer the type name of a column of raw strings.

    Missing values are ignored; an all-missing column is ``"str"``.
    """
    present = [v for v in values if not is_missing(v)]
    if not present:
        return "str"
    for kind in TYPE_ORDER:
        if _accepts(kind, present):
            return kind
    return "str"  # pragma: no cover


def convert_column(values, kind):
    """Convert raw strings to *kind*, mapping missing values to ``None``."""
    parser = PARSERS[kind]
    return [None if is_missing(v) else parser(v) for v in values]
