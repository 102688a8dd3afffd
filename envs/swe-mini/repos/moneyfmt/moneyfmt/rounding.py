"""Rounding modes and helpers to quantize amounts to a currency's precision."""

from __future__ import annotations

import decimal
from decimal import Decimal

#: Public names of the supported rounding modes, mapped to :mod:`decimal` constants.
ROUND_MODES: dict[str, str] = {
    "half_up": decimal.ROUND_HALF_UP,
    "half_down": decimal.ROUND_HALF_DOWN,
    "half_even": decimal.ROUND_HALF_EVEN,
    "up": decimal.ROUND_UP,
    "down": decimal.ROUND_DOWN,
    "ceiling": decimal.ROUND_CEILING,
    "floor": decimal.ROUND_FLOOR,
}

#: Banker's rounding, as used by most accounting systems.
DEFAULT_MODE = "half_even"


def resolve_mode(mode: str | None) -> str:
    """Translate a public mode name (or ``None`` for the default) to a decimal constant."""
    if mode is None:
        mode = DEFAULT_MODE
    try:
        return ROUND_MODES[mode]
    except KeyError:
        choices = ", ".join(sorted(ROUND_MODES))
        raise ValueError(f"unknown rounding mode {mode!r} (choose from {choices})") from None


def quantize(amount: Decimal, minor_units: int, mode: str | None = None) -> Decimal:
    """Round ``amount`` to ``minor_units`` decimal places using ``mode``."""
    exponent = Decimal(1).scaleb(-minor_units)
    return amount.quantize(exponent, rounding=resolve_mode(mode))


def round_to_increment(amount: Decimal, increment: Decimal, mode: str | None = None) -> Decimal:
    """Round ``amount`` to a multiple of ``increment`` (e.g. 0.05 for cash rounding).

    The result keeps the exponent of ``increment``.
    """
    increment = Decimal(increment)
    if increment <= 0:
        raise ValueError("increment must be positive")
    steps = (amount / increment).quantize(Decimal(1), rounding=resolve_mode(mode))
    return (steps * increment).quantize(increment)
