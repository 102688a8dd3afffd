"""Pricing: tiered quantity discounts, tax and money rounding."""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def money(value):
    """Round ``value`` to cents, halves away from zero."""
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Tier:
    """A discount rate (e.g. ``Decimal("0.05")`` for 5 %) from ``min_qty`` units up."""

    min_qty: int
    discount: Decimal

    def __post_init__(self):
        if self.min_qty < 1:
            raise ValueError("tier min_qty must be at least 1")
        if not Decimal("0") <= Decimal(self.discount) < Decimal("1"):
            raise ValueError("tier discount must be in [0, 1)")


@dataclass(frozen=True)
class LinePrice:
    sku: str
    quantity: int
    unit_price: Decimal
    subtotal: Decimal
    discount: Decimal
    tax: Decimal

    @property
    def total(self):
        return self.subtotal - self.discount + self.tax


@dataclass(frozen=True)
class Quote:
    lines: tuple

    @property
    def subtotal(self):
        return sum((line.subtotal for line in self.lines), Decimal("0.00"))

    @property
    def discount(self):
        return sum((line.discount for line in self.lines), Decimal("0.00"))

    @property
    def tax(self):
        return sum((line.tax for line in self.lines), Decimal("0.00"))

    @property
    def total(self):
        return self.subtotal - self.discount + self.tax


class PriceList:
    """Quantity-tiered prices with a flat tax rate.

    The discount of the highest tier whose ``min_qty`` the quantity reaches
    applies to the whole line. Tax is charged on the discounted amount unless
    the item is tax exempt.
    """

    def __init__(self, tiers=(), tax_rate=Decimal("0")):
        self.tiers = sorted(tiers, key=lambda tier: tier.min_qty)
        self.tax_rate = Decimal(str(tax_rate))

    def discount_rate(self, quantity):
        """Discount rate applicable to ``quantity`` units."""
        rate = Decimal("0")
        for tier in self.tiers:
            if quantity > tier.min_qty:
                rate = Decimal(tier.discount)
        return rate

    def price_line(self, item, quantity):
        """Price ``quantity`` units of ``item`` and return a :class:`LinePrice`."""
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        subtotal = money(item.unit_price * quantity)
        discount = money(subtotal * self.discount_rate(quantity))
        tax = Decimal("0.00")
        if not item.tax_exempt:
            tax = money((subtotal - discount) * self.tax_rate)
        return LinePrice(item.sku, quantity, item.unit_price, subtotal, discount, tax)

    def quote(self, catalog, lines):
        """Price order ``lines`` (objects with ``sku`` and ``quantity``)."""
        return Quote(tuple(
            self.price_line(catalog.get(line.sku), line.quantity) for line in lines
        ))
