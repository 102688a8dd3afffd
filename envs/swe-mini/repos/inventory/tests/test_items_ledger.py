from decimal import Decimal

import pytest

from inventory import (
    Catalog,
    DuplicateItemError,
    InsufficientStockError,
    InvalidSKUError,
    Item,
    StockLedger,
    UnknownItemError,
    normalize_sku,
)


def make_catalog():
    return Catalog([
        Item("bolt-m6", "M6 bolt", Decimal("0.25"), category="fasteners"),
        Item("NUT-M6", "M6 nut", "0.10", category="fasteners"),
        Item("drill-1", "Cordless drill", Decimal("89.90"), category="tools"),
    ])


def test_normalize_sku_strips_and_uppercases():
    assert normalize_sku("  bolt-m6 ") == "BOLT-M6"


@pytest.mark.parametrize("raw", ["", "BOLT--M6", "-BOLT", "bolt m6", 42])
def test_normalize_sku_rejects_malformed(raw):
    with pytest.raises(InvalidSKUError):
        normalize_sku(raw)


def test_catalog_lookup_is_case_insensitive():
    catalog = make_catalog()
    assert catalog.get("bolt-M6").name == "M6 bolt"
    assert "nut-m6" in catalog
    assert "no such" not in catalog
    assert len(catalog) == 3


def test_catalog_rejects_duplicates_and_unknown():
    catalog = make_catalog()
    with pytest.raises(DuplicateItemError):
        catalog.add(Item("Bolt-M6", "again", 1))
    with pytest.raises(UnknownItemError):
        catalog.get("WIDGET")


def test_catalog_by_category_sorted():
    catalog = make_catalog()
    assert [i.sku for i in catalog.by_category("fasteners")] == ["BOLT-M6", "NUT-M6"]


def test_item_price_converted_to_decimal():
    item = Item("x1", "X", 1.1)
    assert item.unit_price == Decimal("1.1")
    with pytest.raises(ValueError):
        Item("x2", "X", "-1")


def test_receive_ship_adjust_balances():
    ledger = StockLedger(make_catalog())
    ledger.receive("bolt-m6", "north", 100, reference="PO-1")
    ledger.receive("BOLT-M6", "south", 40)
    ledger.ship("bolt-m6", "north", 30, reference="SO-7")
    ledger.adjust("bolt-m6", "south", -5, reference="count")
    assert ledger.on_hand("BOLT-M6", "north") == 70
    assert ledger.on_hand("BOLT-M6", "south") == 35
    assert ledger.on_hand("BOLT-M6") == 105
    assert [m.quantity for m in ledger.movements("bolt-m6")] == [100, 40, -30, -5]
    assert [m.seq for m in ledger.movements(kind="ship")] == [3]


def test_ship_more_than_available_raises():
    ledger = StockLedger(make_catalog())
    ledger.receive("NUT-M6", "north", 10)
    ledger.reserve("NUT-M6", "north", 8)
    with pytest.raises(InsufficientStockError) as info:
        ledger.ship("NUT-M6", "north", 5)
    assert info.value.available == 2
    ledger.ship("NUT-M6", "north", 5, from_reservation=True)
    assert ledger.on_hand("NUT-M6") == 5
    assert ledger.reserved("NUT-M6") == 3


def test_adjust_cannot_go_below_reserved():
    ledger = StockLedger(make_catalog())
    ledger.receive("drill-1", "south", 3)
    ledger.reserve("drill-1", "south", 2)
    with pytest.raises(InsufficientStockError):
        ledger.adjust("drill-1", "south", -2)
    ledger.release("drill-1", "south", 2)
    ledger.adjust("drill-1", "south", -2)
    assert ledger.available("drill-1") == 1


@pytest.mark.parametrize("qty", [0, -3, 2.5, True])
def test_receive_rejects_bad_quantities(qty):
    ledger = StockLedger(make_catalog())
    with pytest.raises(ValueError):
        ledger.receive("NUT-M6", "north", qty)


def test_warehouses_sorted():
    ledger = StockLedger(make_catalog())
    ledger.receive("NUT-M6", "south", 1)
    ledger.receive("BOLT-M6", "east", 1)
    ledger.receive("NUT-M6", "north", 1)
    assert ledger.warehouses() == ["east", "north", "south"]
    assert ledger.warehouses("nut-m6") == ["north", "south"]
