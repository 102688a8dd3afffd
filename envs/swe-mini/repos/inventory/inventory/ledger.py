"""Stock ledger: an append-only list of movements plus running balances."""

from dataclasses import dataclass

from inventory.errors import InsufficientStockError

RECEIVE = "receive"
SHIP = "ship"
ADJUST = "adjust"


@dataclass(frozen=True)
class Movement:
    """One change to the stock of a SKU in a warehouse.

    ``quantity`` is the signed delta applied to the on-hand balance.
    """

    seq: int
    kind: str
    sku: str
    warehouse: str
    quantity: int
    reference: str = ""


def _check_positive(quantity):
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
        raise ValueError(f"quantity must be a positive integer, got {quantity!r}")


class StockLedger:
    """Tracks on-hand and reserved stock per (SKU, warehouse).

    Every SKU is validated against ``catalog``; available stock is on-hand
    minus reserved.
    """

    def __init__(self, catalog):
        self.catalog = catalog
        self._movements = []
        self._on_hand = {}
        self._reserved = {}

    # -- movements -------------------------------------------------------
    def _record(self, kind, sku, warehouse, delta, reference):
        sku = self.catalog.get(sku).sku
        key = (sku, warehouse)
        self._on_hand[key] = self._on_hand.get(key, 0) + delta
        movement = Movement(len(self._movements) + 1, kind, sku, warehouse, delta, reference)
        self._movements.append(movement)
        return movement

    def receive(self, sku, warehouse, quantity, reference=""):
        """Book ``quantity`` units into ``warehouse``."""
        _check_positive(quantity)
        return self._record(RECEIVE, sku, warehouse, quantity, reference)

    def ship(self, sku, warehouse, quantity, reference="", from_reservation=False):
        """Take ``quantity`` units out of ``warehouse``.

        With ``from_reservation`` the units are taken from stock previously
        reserved (e.g. by :func:`inventory.allocation.allocate`); otherwise
        they must be available (not reserved).
        """
        _check_positive(quantity)
        sku = self.catalog.get(sku).sku
        key = (sku, warehouse)
        if from_reservation:
            reserved = self._reserved.get(key, 0)
            if quantity > reserved:
                raise InsufficientStockError(sku, warehouse, quantity, reserved)
            self._reserved[key] = reserved - quantity
        else:
            free = self.available(sku, warehouse)
            if quantity > free:
                raise InsufficientStockError(sku, warehouse, quantity, free)
        return self._record(SHIP, sku, warehouse, -quantity, reference)

    def adjust(self, sku, warehouse, delta, reference=""):
        """Correct the on-hand balance by ``delta`` (e.g. after a stock count).

        The balance may not drop below the quantity currently reserved.
        """
        if not isinstance(delta, int) or delta == 0:
            raise ValueError("adjustment must be a non-zero integer")
        sku = self.catalog.get(sku).sku
        if delta < 0 and -delta > self.available(sku, warehouse):
            raise InsufficientStockError(sku, warehouse, -delta, self.available(sku, warehouse))
        return self._record(ADJUST, sku, warehouse, delta, reference)

    # -- reservations ----------------------------------------------------
    def reserve(self, sku, warehouse, quantity):
        """Reserve ``quantity`` available units in ``warehouse``."""
        _check_positive(quantity)
        sku = self.catalog.get(sku).sku
        free = self.available(sku, warehouse)
        if quantity > free:
            raise InsufficientStockError(sku, warehouse, quantity, free)
        key = (sku, warehouse)
        self._reserved[key] = self._reserved.get(key, 0) + quantity

    def release(self, sku, warehouse, quantity):
        """Give back ``quantity`` previously reserved units."""
        _check_positive(quantity)
        key = (self.catalog.get(sku).sku, warehouse)
        reserved = self._reserved.get(key, 0)
        if quantity > reserved:
            raise ValueError(f"only {reserved} units reserved")
        self._reserved[key] = reserved - quantity

    # -- queries ---------------------------------------------------------
    def _sum(self, table, sku, warehouse):
        sku = self.catalog.get(sku).sku
        if warehouse is not None:
            return table.get((sku, warehouse), 0)
        return sum(qty for (s, _), qty in table.items() if s == sku)

    def on_hand(self, sku, warehouse=None):
        """Units physically present, in one warehouse or in all of them."""
        return self._sum(self._on_hand, sku, warehouse)

    def reserved(self, sku, warehouse=None):
        """Units reserved for orders but not yet shipped."""
        return self._sum(self._reserved, sku, warehouse)

    def available(self, sku, warehouse=None):
        """Units that can still be reserved or shipped."""
        return self.on_hand(sku, warehouse) - self.reserved(sku, warehouse)

    def warehouses(self, sku=None):
        """Sorted names of warehouses that have seen movements (of ``sku``)."""
        if sku is not None:
            sku = self.catalog.get(sku).sku
        return sorted({w for (s, w) in self._on_hand if sku is None or s == sku})

    def movements(self, sku=None, kind=None):
        """Movements in booking order, optionally filtered by SKU and kind."""
        if sku is not None:
            sku = self.catalog.get(sku).sku
        return [
            m for m in self._movements
            if (sku is None or m.sku == sku) and (kind is None or m.kind == kind)
        ]
