"""Parsing formatted money strings back into :class:`~moneyfmt.money.Money`."""

from __future__ import annotations

import re
from decimal import Decimal

from .currencies import Currency, all_currencies, get_currency
from .formatting import Locale, get_locale
from .money import Money

_DIGITS = re.compile(r"[0-9]+")


class ParseError(ValueError):
    """Raised when a string cannot be read as an amount of money."""


def _strip_affix(text: str, token: str) -> str | None:
    """Remove ``token`` from the start or end of ``text``; ``None`` if it is at neither."""
    if text.startswith(token):
        return text[len(token):].strip()
    if text.endswith(token):
        return text[: -len(token)].strip()
    return None


def _split_currency(text: str, currency: str | Currency | None) -> tuple[Currency, str]:
    """Find the currency code or symbol in ``text`` and return it with the rest."""
    if currency is not None:
        cur = get_currency(currency)
        for token in (cur.code, cur.symbol):
            rest = _strip_affix(text, token)
            if rest is not None:
                return cur, rest
        return cur, text

    # An ISO code is unambiguous, so try those first.
    for cur in all_currencies():
        rest = _strip_affix(text, cur.code)
        if rest is not None:
            return cur, rest
    for cur in all_currencies():
        if cur.symbol in text:
            return cur, text.replace(cur.symbol, "", 1).strip()
    raise ParseError(f"no currency found in {text!r}")


def _parse_number(text: str, loc: Locale, cur: Currency) -> Decimal:
    if loc.decimal_sep in text:
        int_part, frac = text.rsplit(loc.decimal_sep, 1)
    else:
        int_part, frac = text, ""
    groups = int_part.split(loc.group_sep)
    if len(groups) > 1:
        if not (1 <= len(groups[0]) <= 3) or any(len(g) != 3 for g in groups[1:]):
            raise ParseError(f"misplaced group separator in {text!r}")
    digits = "".join(groups)
    if not _DIGITS.fullmatch(digits) or (frac and not _DIGITS.fullmatch(frac)):
        raise ParseError(f"invalid amount {text!r}")
    if len(frac) > cur.minor_units:
        raise ParseError(f"too many decimal places for {cur.code}: {text!r}")
    return Decimal(f"{digits}.{frac}") if frac else Decimal(digits)


def parse_money(
    text: str,
    locale: str | Locale = "en_US",
    currency: str | Currency | None = None,
) -> Money:
    """Parse a string such as ``"$1,234.50"``, ``"1.234,50 €"`` or ``"($5.00)"``.

    When ``currency`` is omitted it is detected from the ISO code or symbol in
    the text. Negative amounts may use a leading minus or parentheses.
    """
    loc = get_locale(locale)
    s = text.strip()
    if not s:
        raise ParseError("empty string")
    negative = False
    if s.startswith("(") and s.endswith(")"):
        negative, s = True, s[1:-1].strip()
    if s.startswith("-"):
        negative, s = not negative, s[1:].strip()
    cur, rest = _split_currency(s, currency)
    if rest.startswith("-"):
        negative, rest = not negative, rest[1:].strip()
    amount = _parse_number(rest, loc, cur)
    return Money(-amount if negative else amount, cur)
