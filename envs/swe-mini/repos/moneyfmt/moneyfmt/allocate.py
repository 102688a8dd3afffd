"""Splitting an amount into parts without losing or inventing minor units."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Sequence

from .money import Money, _to_decimal


def allocate(money: Money, ratios: Sequence) -> list[Money]:
    """Split ``money`` in proportion to ``ratios``.

    Every part is first truncated to the currency's precision; the minor units
    lost that way are then handed out one at a time, starting with the first
    part that has a non-zero ratio. The parts always add up to ``money``.

    >>> [str(m) for m in allocate(Money("100", "USD"), [1, 1, 1])]
    ['33.34 USD', '33.33 USD', '33.33 USD']
    """
    weights = [_to_decimal(r) for r in ratios]
    if not weights:
        raise ValueError("at least one ratio is required")
    if any(w < 0 for w in weights):
        raise ValueError("ratios must not be negative")
    total = sum(weights)
    if total == 0:
        raise ValueError("ratios must not all be zero")

    unit = money.currency.exponent
    shares = [(money.amount * w / total).quantize(unit, rounding=ROUND_DOWN) for w in weights]

    remainder = money.amount - sum(shares)
    eligible = [i for i, w in enumerate(weights) if w > 0]
    leftover = int(remainder / unit)
    for n in range(leftover):
        shares[eligible[n % len(eligible)]] += unit

    return [Money(share, money.currency) for share in shares]


def split(money: Money, parts: int) -> list[Money]:
    """Split ``money`` into ``parts`` near-equal amounts (the first ones get the extra units)."""
    if parts < 1:
        raise ValueError("parts must be at least 1")
    return allocate(money, [1] * parts)


def allocate_percentages(money: Money, percentages: Sequence) -> list[Money]:
    """Like :func:`allocate`, but the ratios must be percentages adding up to 100."""
    weights = [_to_decimal(p) for p in percentages]
    if sum(weights) != Decimal(100):
        raise ValueError("percentages must add up to 100")
    return allocate(money, weights)
