"""Item catalog: SKU handling and item metadata."""

import re
from dataclasses import dataclass
from decimal import Decimal

from inventory.errors import DuplicateItemError, InvalidSKUError, UnknownItemError

_SKU_RE = re.compile(r"^[A-Z0-9]+(?:-[A-Z0-9]+)*$")


def normalize_sku(raw):
    """Return the canonical form of ``raw``: stripped and upper-cased.

    SKUs consist of letters and digits, optionally separated by single dashes.
    Raises :class:`InvalidSKUError` for anything else.
    """
    if not isinstance(raw, str):
        raise InvalidSKUError(f"SKU must be a string, got {type(raw).__name__}")
    sku = raw.strip().upper()
    if not _SKU_RE.match(sku):
        raise InvalidSKUError(f"invalid SKU: {raw!r}")
    return sku


@dataclass
class Item:
    """A stock-keeping unit with a unit price."""

    sku: str
    name: str
    unit_price: Decimal
    category: str = "general"
    tax_exempt: bool = False

    def __post_init__(self):
        self.sku = normalize_sku(self.sku)
        self.unit_price = Decimal(str(self.unit_price))
        if self.unit_price < 0:
            raise ValueError(f"unit price of {self.sku} cannot be negative")


class Catalog:
    """A collection of items addressed by (case-insensitive) SKU."""

    def __init__(self, items=()):
        self._items = {}
        for item in items:
            self.add(item)

    def add(self, item):
        """Add ``item``; raises :class:`DuplicateItemError` if the SKU exists."""
        if item.sku in self._items:
            raise DuplicateItemError(f"duplicate SKU: {item.sku}")
        self._items[item.sku] = item
        return item

    def get(self, sku):
        """Return the item for ``sku`` or raise :class:`UnknownItemError`."""
        key = normalize_sku(sku)
        try:
            return self._items[key]
        except KeyError:
            raise UnknownItemError(key) from None

    def by_category(self, category):
        """Items of ``category``, sorted by SKU."""
        return [item for item in self if item.category == category]

    def __contains__(self, sku):
        try:
            return normalize_sku(sku) in self._items
        except InvalidSKUError:
            return False

    def __iter__(self):
        return iter(sorted(self._items.values(), key=lambda item: item.sku))

    def __len__(self):
        return len(self._items)
