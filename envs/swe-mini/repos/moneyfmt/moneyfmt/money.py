"""The :class:`Money` value type."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import total_ordering
from typing import Iterable

from .currencies import Currency, get_currency
from .rounding import quantize, round_to_increment


class CurrencyMismatchError(ValueError):
    """Raised when combining amounts in different currencies."""


def _to_decimal(value) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError("bool is not a valid amount")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # Go through repr() so 0.1 becomes Decimal('0.1'), not the binary expansion.
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"invalid amount: {value!r}") from None
    raise TypeError(f"cannot convert {type(value).__name__} to an amount")


@total_ordering
class Money:
    """An amount of money in one currency, always held at the currency's precision.

    >>> Money("10.005", "USD", mode="half_up")
    Money('10.01', 'USD')
    """

    __slots__ = ("amount", "currency")

    def __init__(self, amount, currency: str | Currency, *, mode: str | None = None):
        cur = get_currency(currency)
        value = _to_decimal(amount)
        if not value.is_finite():
            raise ValueError("amount must be finite")
        object.__setattr__(self, "currency", cur)
        object.__setattr__(self, "amount", quantize(value, cur.minor_units, mode))

    def __setattr__(self, name, value):
        raise AttributeError("Money is immutable")

    # -- constructors -----------------------------------------------------
    @classmethod
    def zero(cls, currency: str | Currency) -> "Money":
        return cls(0, currency)

    @classmethod
    def from_minor_units(cls, units: int, currency: str | Currency) -> "Money":
        """Build from an integer count of minor units (cents): ``(1234, 'USD')`` -> 12.34."""
        cur = get_currency(currency)
        return cls(Decimal(int(units)).scaleb(-cur.minor_units), cur)

    # -- accessors --------------------------------------------------------
    @property
    def minor_units(self) -> int:
        """The amount as an integer count of minor units."""
        return int(self.amount.scaleb(self.currency.minor_units))

    def is_zero(self) -> bool:
        return self.amount == 0

    def is_negative(self) -> bool:
        return self.amount < 0

    # -- arithmetic -------------------------------------------------------
    def _check(self, other) -> "Money":
        if not isinstance(other, Money):
            raise TypeError(f"expected Money, got {type(other).__name__}")
        if other.currency.code != self.currency.code:
            raise CurrencyMismatchError(
                f"cannot combine {self.currency.code} with {other.currency.code}"
            )
        return other

    def __add__(self, other):
        if not isinstance(other, Money):
            return NotImplemented
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __radd__(self, other):
        # Allows sum() with its default start value of 0.
        if other == 0:
            return self
        return NotImplemented

    def __sub__(self, other):
        if not isinstance(other, Money):
            return NotImplemented
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self):
        return Money(-self.amount, self.currency)

    def __abs__(self):
        return Money(abs(self.amount), self.currency)

    def multiply(self, factor, mode: str | None = None) -> "Money":
        """Multiply by a scalar, rounding the result with ``mode``."""
        return Money(self.amount * _to_decimal(factor), self.currency, mode=mode)

    def __mul__(self, factor):
        if isinstance(factor, Money):
            return NotImplemented
        return self.multiply(factor)

    __rmul__ = __mul__

    def round_to(self, increment, mode: str | None = None) -> "Money":
        """Round to a multiple of ``increment``, e.g. ``Decimal('0.05')`` for CHF cash."""
        return Money(round_to_increment(self.amount, _to_decimal(increment), mode), self.currency)

    # -- comparison -------------------------------------------------------
    def __eq__(self, other):
        if not isinstance(other, Money):
            return NotImplemented
        return self.currency.code == other.currency.code and self.amount == other.amount

    def __lt__(self, other):
        if not isinstance(other, Money):
            return NotImplemented
        self._check(other)
        return self.amount < other.amount

    def __hash__(self):
        return hash((self.currency.code, self.amount))

    def __bool__(self):
        return not self.is_zero()

    def __repr__(self):
        return f"Money({str(self.amount)!r}, {self.currency.code!r})"

    def __str__(self):
        return f"{self.amount} {self.currency.code}"


def sum_money(items: Iterable[Money], currency: str | Currency) -> Money:
    """Add up ``items``; an empty iterable gives zero in ``currency``."""
    total = Money.zero(currency)
    for item in items:
        total = total + item
    return total
