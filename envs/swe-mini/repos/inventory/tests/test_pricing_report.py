import csv
import io
from decimal import Decimal

import pytest

from inventory import (
    Catalog,
    Item,
    OrderLine,
    PriceList,
    StockLedger,
    Tier,
    format_csv,
    money,
    quote_report,
    stock_report,
)


def price_list():
    return PriceList(
        [Tier(50, Decimal("0.10")), Tier(10, Decimal("0.05"))],
        tax_rate=Decimal("0.20"),
    )


def test_money_rounds_half_up():
    assert money(Decimal("2.675")) == Decimal("2.68")
    assert money("0.125") == Decimal("0.13")
    assert money(3) == Decimal("3.00")


def test_discount_rate_picks_highest_reached_tier():
    prices = price_list()
    assert prices.discount_rate(3) == Decimal("0")
    assert prices.discount_rate(25) == Decimal("0.05")
    assert prices.discount_rate(120) == Decimal("0.10")


def test_price_line_applies_discount_then_tax():
    prices = price_list()
    line = prices.price_line(Item("BOLT-M6", "M6 bolt", Decimal("0.25")), 60)
    assert line.subtotal == Decimal("15.00")
    assert line.discount == Decimal("1.50")
    assert line.tax == Decimal("2.70")
    assert line.total == Decimal("16.20")


def test_tax_exempt_item_has_no_tax():
    prices = price_list()
    line = prices.price_line(Item("BOOK-1", "Manual", "12.50", tax_exempt=True), 2)
    assert line.tax == Decimal("0.00")
    assert line.total == Decimal("25.00")


def test_invalid_tiers_rejected():
    with pytest.raises(ValueError):
        Tier(0, Decimal("0.1"))
    with pytest.raises(ValueError):
        Tier(5, Decimal("1.5"))


def test_quote_totals_and_report():
    catalog = Catalog([
        Item("BOLT-M6", "M6 bolt", Decimal("0.25")),
        Item("DRILL-1", "Drill", Decimal("89.90")),
    ])
    quote = price_list().quote(catalog, [OrderLine("BOLT-M6", 60), OrderLine("DRILL-1", 1)])
    assert quote.total == Decimal("16.20") + Decimal("107.88")
    text = quote_report(quote)
    lines = text.splitlines()
    assert lines[0] == "sku,quantity,unit_price,subtotal,discount,tax,total"
    assert lines[-1] == "TOTAL,,,104.90,1.50,20.68,124.08"


def test_format_csv_quotes_delimiter_and_none():
    text = format_csv(["a", "b"], [["x,y", None], [1, "z"]])
    assert text == 'a,b\n"x,y",\n1,z\n'


def test_format_csv_checks_row_width():
    with pytest.raises(ValueError):
        format_csv(["a", "b"], [[1]])


def test_stock_report_round_trips_through_csv_module():
    catalog = Catalog([
        Item("BOLT-M6", "Bolt, M6 zinc", Decimal("0.25")),
        Item("NUT-M6", "M6 nut", Decimal("0.10")),
    ])
    ledger = StockLedger(catalog)
    ledger.receive("NUT-M6", "south", 50)
    ledger.receive("BOLT-M6", "north", 10)
    ledger.reserve("BOLT-M6", "north", 4)
    rows = list(csv.reader(io.StringIO(stock_report(ledger))))
    assert rows == [
        ["sku", "name", "warehouse", "on_hand", "reserved", "available"],
        ["BOLT-M6", "Bolt, M6 zinc", "north", "10", "4", "6"],
        ["NUT-M6", "M6 nut", "south", "50", "0", "50"],
    ]
