"""Currency registry: ISO 4217 codes, minor units and display symbols."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Currency:
    """A currency as far as formatting and arithmetic are concerned.

    ``minor_units`` is the number of digits after the decimal point that the
    currency uses (0 for JPY, 2 for USD, 3 for KWD).
    """

    code: str
    minor_units: int
    symbol: str
    name: str = ""

    @property
    def exponent(self) -> Decimal:
        """The smallest representable amount, e.g. ``Decimal('0.01')`` for USD."""
        return Decimal(1).scaleb(-self.minor_units)

    def __str__(self) -> str:
        return self.code


class UnknownCurrencyError(KeyError):
    """Raised when a currency code is not registered."""


_REGISTRY: dict[str, Currency] = {}


def register_currency(currency: Currency) -> Currency:
    """Add ``currency`` to the registry (replacing one with the same code)."""
    if len(currency.code) != 3 or not currency.code.isalpha():
        raise ValueError(f"invalid ISO 4217 code: {currency.code!r}")
    if currency.minor_units < 0:
        raise ValueError("minor_units must be >= 0")
    _REGISTRY[currency.code.upper()] = currency
    return currency


def get_currency(code: str | Currency) -> Currency:
    """Look a currency up by its code (case-insensitive).

    A :class:`Currency` instance is returned unchanged, so callers can accept
    either form.
    """
    if isinstance(code, Currency):
        return code
    try:
        return _REGISTRY[str(code).strip().upper()]
    except KeyError:
        raise UnknownCurrencyError(code) from None


def all_currencies() -> list[Currency]:
    """All registered currencies, in registration order."""
    return list(_REGISTRY.values())


for _cur in (
    Currency("USD", 2, "$", "US Dollar"),
    Currency("EUR", 2, "€", "Euro"),
    Currency("GBP", 2, "£", "Pound Sterling"),
    Currency("JPY", 0, "¥", "Yen"),
    Currency("CHF", 2, "CHF", "Swiss Franc"),
    Currency("KWD", 3, "KD", "Kuwaiti Dinar"),
    Currency("BRL", 2, "R$", "Brazilian Real"),
    Currency("CAD", 2, "CA$", "Canadian Dollar"),
):
    register_currency(_cur)
del _cur
