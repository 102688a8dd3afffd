"""Order allocation: reserve stock for order lines across warehouses."""

from dataclasses import dataclass, field

from inventory.errors import InsufficientStockError
from inventory.items import normalize_sku


@dataclass(frozen=True)
class OrderLine:
    sku: str
    quantity: int


@dataclass(frozen=True)
class Pick:
    """``quantity`` units of ``sku`` to be picked from ``warehouse``."""

    sku: str
    warehouse: str
    quantity: int


class Order:
    """A customer order made of lines; repeated SKUs are merged."""

    def __init__(self, order_id, lines=[]):
        self.order_id = order_id
        self.lines = lines

    def add_line(self, sku, quantity):
        """Add ``quantity`` of ``sku`` to the order and return the order."""
        if quantity <= 0:
            raise ValueError("order quantity must be positive")
        sku = normalize_sku(sku)
        for index, line in enumerate(self.lines):
            if line.sku == sku:
                self.lines[index] = OrderLine(sku, line.quantity + quantity)
                return self
        self.lines.append(OrderLine(sku, quantity))
        return self

    def total_units(self):
        return sum(line.quantity for line in self.lines)

    def __repr__(self):
        return f"Order({self.order_id!r}, lines={self.lines!r})"


@dataclass
class Allocation:
    order_id: str
    picks: list = field(default_factory=list)
    backordered: dict = field(default_factory=dict)

    @property
    def fully_allocated(self):
        return not self.backordered


def _candidate_warehouses(ledger, sku, priority):
    """Warehouses holding ``sku``: explicit priority first, then most available."""
    stocked = [w for w in ledger.warehouses(sku) if ledger.available(sku, w) > 0]
    if priority:
        ranked = [w for w in priority if w in stocked]
        rest = [w for w in stocked if w not in ranked]
    else:
        ranked, rest = [], stocked
    rest.sort(key=lambda w: (-ledger.available(sku, w), w))
    return ranked + rest


def allocate(order, ledger, priority=None, allow_partial=False):
    """Reserve stock for every line of ``order`` and return an :class:`Allocation`.

    Lines are split across warehouses when no single warehouse has enough.
    Without ``allow_partial`` a shortfall raises :class:`InsufficientStockError`
    and nothing is reserved; with it the missing units are reported in
    ``Allocation.backordered``.
    """
    result = Allocation(order.order_id)
    for line in order.lines:
        remaining = line.quantity
        for warehouse in _candidate_warehouses(ledger, line.sku, priority):
            take = min(remaining, ledger.available(line.sku, warehouse))
            result.picks.append(Pick(line.sku, warehouse, take))
            remaining -= take
            if remaining == 0:
                break
        if remaining:
            if not allow_partial:
                raise InsufficientStockError(
                    line.sku, None, line.quantity, line.quantity - remaining
                )
            result.backordered[line.sku] = remaining
    for pick in result.picks:
        ledger.reserve(pick.sku, pick.warehouse, pick.quantity)
    return result
