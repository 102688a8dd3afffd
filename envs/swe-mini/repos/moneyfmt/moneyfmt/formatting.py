"""Locale-ish formatting of :class:`~moneyfmt.money.Money` values."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .money import Money
from .rounding import quantize


@dataclass(frozen=True)
class Locale:
    """Separators and symbol placement for one display convention."""

    name: str
    group_sep: str
    decimal_sep: str
    symbol_first: bool
    symbol_space: bool


LOCALES: dict[str, Locale] = {
    "en_US": Locale("en_US", ",", ".", True, False),
    "en_GB": Locale("en_GB", ",", ".", True, False),
    "de_DE": Locale("de_DE", ".", ",", False, True),
    "fr_FR": Locale("fr_FR", "\u202f", ",", False, True),
    "pt_BR": Locale("pt_BR", ".", ",", True, True),
    "de_CH": Locale("de_CH", "'", ".", True, True),
}

NEGATIVE_STYLES = ("minus", "parens")


def get_locale(name: str | Locale) -> Locale:
    """Return the :class:`Locale` called ``name`` (``"de-DE"`` is accepted too)."""
    if isinstance(name, Locale):
        return name
    key = str(name).replace("-", "_")
    try:
        return LOCALES[key]
    except KeyError:
        raise ValueError(f"unknown locale {name!r}") from None


def group_digits(digits: str, sep: str) -> str:
    """Insert ``sep`` between groups of three digits, counting from the right.

    >>> group_digits("1234567", ",")
    '1,234,567'
    """
    head = len(digits) % 3
    groups = [digits[:head]]
    groups.extend(digits[i:i + 3] for i in range(head, len(digits), 3))
    return sep.join(groups)


def format_number(amount: Decimal, minor_units: int, locale: str | Locale = "en_US") -> str:
    """Format the absolute value of ``amount`` with the locale's separators."""
    loc = get_locale(locale)
    text = f"{abs(quantize(amount, minor_units)):f}"
    int_part, _, frac = text.partition(".")
    result = group_digits(int_part, loc.group_sep)
    if minor_units:
        result += loc.decimal_sep + frac
    return result


def format_money(
    money: Money,
    locale: str | Locale = "en_US",
    *,
    negative: str = "minus",
    use_code: bool = False,
) -> str:
    """Format ``money`` for display.

    >>> format_money(Money("1234.5", "USD"))
    '$1,234.50'
    >>> format_money(Money("1234.5", "EUR"), "de_DE")
    '1.234,50 €'
    >>> format_money(Money("-1234.5", "USD"), negative="parens")
    '($1,234.50)'
    """
    if negative not in NEGATIVE_STYLES:
        raise ValueError(f"negative must be one of {NEGATIVE_STYLES}")
    loc = get_locale(locale)
    cur = money.currency
    number = format_number(money.amount, cur.minor_units, loc)
    symbol = cur.code if use_code else cur.symbol

    if loc.symbol_first:
        # Alphabetic symbols ("CHF", "KD", ISO codes) always need a space.
        space = " " if (loc.symbol_space or symbol[-1].isalpha()) else ""
        body = f"{symbol}{space}{number}"
    else:
        body = f"{number} {symbol}"

    if money.is_negative():
        return f"({body})" if negative == "parens" else f"-{body}"
    return body
