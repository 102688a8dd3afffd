"""moneyfmt: a small money library.

Money values on :class:`decimal.Decimal` with currency-aware precision,
allocation without losing cents, rounding modes, and locale-ish formatting
and parsing.
"""

from .allocate import allocate, allocate_percentages, split
from .currencies import (
    Currency,
    UnknownCurrencyError,
    all_currencies,
    get_currency,
    register_currency,
)
from .formatting import LOCALES, Locale, format_money, format_number, get_locale
from .money import CurrencyMismatchError, Money, sum_money
from .parsing import ParseError, parse_money
from .rounding import DEFAULT_MODE, ROUND_MODES, quantize, round_to_increment

__version__ = "0.4.1"

__all__ = [
    "Currency",
    "CurrencyMismatchError",
    "DEFAULT_MODE",
    "LOCALES",
    "Locale",
    "Money",
    "ParseError",
    "ROUND_MODES",
    "UnknownCurrencyError",
    "all_currencies",
    "allocate",
    "allocate_percentages",
    "format_money",
    "format_number",
    "get_currency",
    "get_locale",
    "parse_money",
    "quantize",
    "register_currency",
    "round_to_increment",
    "split",
    "sum_money",
]
