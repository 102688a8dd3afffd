from decimal import Decimal

import pytest

from inventory import (
    Catalog,
    InsufficientStockError,
    Item,
    Order,
    OrderLine,
    Pick,
    StockLedger,
    allocate,
)


def stocked_ledger():
    catalog = Catalog([
        Item("BOLT-M6", "M6 bolt", Decimal("0.25")),
        Item("NUT-M6", "M6 nut", Decimal("0.10")),
    ])
    ledger = StockLedger(catalog)
    ledger.receive("BOLT-M6", "north", 500)
    ledger.receive("BOLT-M6", "south", 200)
    ledger.receive("BOLT-M6", "east", 200)
    ledger.receive("NUT-M6", "south", 50)
    return ledger


def test_single_warehouse_allocation_reserves_stock():
    ledger = stocked_ledger()
    order = Order("SO-1", [OrderLine("NUT-M6", 20)])
    result = allocate(order, ledger)
    assert result.picks == [Pick("NUT-M6", "south", 20)]
    assert result.fully_allocated
    assert ledger.available("NUT-M6", "south") == 30


def test_split_prefers_most_available_then_name():
    ledger = stocked_ledger()
    order = Order("SO-2", [OrderLine("BOLT-M6", 650)])
    result = allocate(order, ledger)
    assert result.picks == [
        Pick("BOLT-M6", "north", 500),
        Pick("BOLT-M6", "east", 150),
    ]


def test_explicit_priority_is_respected():
    ledger = stocked_ledger()
    order = Order("SO-3", [OrderLine("BOLT-M6", 300)])
    result = allocate(order, ledger, priority=["south", "north"])
    assert result.picks == [
        Pick("BOLT-M6", "south", 200),
        Pick("BOLT-M6", "north", 100),
    ]


def test_shortfall_raises_and_reserves_nothing():
    ledger = stocked_ledger()
    order = Order("SO-4", [OrderLine("BOLT-M6", 10), OrderLine("NUT-M6", 80)])
    with pytest.raises(InsufficientStockError) as info:
        allocate(order, ledger)
    assert info.value.available == 50
    assert ledger.reserved("BOLT-M6") == 0
    assert ledger.reserved("NUT-M6") == 0


def test_partial_allocation_backorders_remainder():
    ledger = stocked_ledger()
    order = Order("SO-5", [OrderLine("NUT-M6", 80)])
    result = allocate(order, ledger, allow_partial=True)
    assert result.picks == [Pick("NUT-M6", "south", 50)]
    assert result.backordered == {"NUT-M6": 30}
    assert not result.fully_allocated


def test_add_line_merges_same_sku():
    order = Order("SO-6", [])
    order.add_line("bolt-m6", 5).add_line("NUT-M6", 2).add_line("BOLT-M6", 3)
    assert order.lines == [OrderLine("BOLT-M6", 8), OrderLine("NUT-M6", 2)]
    assert order.total_units() == 10
    with pytest.raises(ValueError):
        order.add_line("NUT-M6", 0)
