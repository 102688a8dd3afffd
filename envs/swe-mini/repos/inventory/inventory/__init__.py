"""inventory - a small stock and warehouse management library."""

from inventory.errors import (
    DuplicateItemError,
    InsufficientStockError,
    InvalidSKUError,
    InventoryError,
    UnknownItemError,
)
from inventory.items import Catalog, Item, normalize_sku
from inventory.ledger import Movement, StockLedger
from inventory.allocation import Allocation, Order, OrderLine, Pick, allocate
from inventory.pricing import LinePrice, PriceList, Quote, Tier, money
from inventory.report import format_csv, quote_report, stock_report

__version__ = "0.4.1"

__all__ = [
    "Allocation", "Catalog", "DuplicateItemError", "InsufficientStockError",
    "InvalidSKUError", "InventoryError", "Item", "LinePrice", "Movement", "Order",
    "OrderLine", "Pick", "PriceList", "Quote", "StockLedger", "Tier",
    "UnknownItemError", "allocate", "format_csv", "money", "normalize_sku",
    "quote_report", "stock_report",
]
