"""Exception hierarchy used throughout the package."""


class InventoryError(Exception):
    """Base class for all inventory errors."""


class InvalidSKUError(InventoryError, ValueError):
    """Raised when a SKU string is malformed."""


class UnknownItemError(InventoryError, KeyError):
    """Raised when a SKU is not present in the catalog."""


class DuplicateItemError(InventoryError, ValueError):
    """Raised when adding an item whose SKU already exists."""


class InsufficientStockError(InventoryError):
    """Raised when a movement or reservation would exceed the stock available."""

    def __init__(self, sku, warehouse, requested, available):
        self.sku = sku
        self.warehouse = warehouse
        self.requested = requested
        self.available = available
        where = f" in {warehouse}" if warehouse else ""
        super().__init__(
            f"cannot take {requested} x {sku}{where}: only {available} available"
        )
