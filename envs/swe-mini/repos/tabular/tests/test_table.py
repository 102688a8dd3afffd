import pytest

from tabular import Table, read_csv

SALES = """region,item,amount
north,apple,10
south,pear,4
north,pear,
south,apple,7
north,apple,3
"""


def make_sales():
    return read_csv(SALES)


def test_filter_by_predicate_and_equality():
    table = make_sales()
    north = table.filter(region="north")
    assert north.column("item") == ["apple", "pear", "apple"]
    big = table.filter(lambda r: (r["amount"] or 0) > 5)
    assert big.column("amount") == [10, 7]


def test_filter_unknown_column_raises_key_error():
    with pytest.raises(KeyError):
        make_sales().filter(colour="red")


def test_select_reorders_columns():
    table = make_sales().select("amount", "region")
    assert table.columns == ["amount", "region"]
    assert table.rows[0] == [10, "north"]
    assert table.types == {"amount": "int", "region": "str"}


def test_sort_single_key_ascending_puts_none_last():
    table = make_sales().sort_by("amount")
    assert table.column("amount") == [3, 4, 7, 10, None]


def test_sort_multi_key_is_stable():
    table = make_sales().sort_by(["region", "item"])
    assert [(r["region"], r["item"], r["amount"]) for r in table.records()] == [
        ("north", "apple", 10),
        ("north", "apple", 3),
        ("north", "pear", None),
        ("south", "apple", 7),
        ("south", "pear", 4),
    ]


def test_sort_mixed_directions():
    table = make_sales().sort_by(["region", "item"], descending=[True, False])
    assert table.column("region") == ["south", "south", "north", "north", "north"]
    assert table.column("item") == ["apple", "pear", "apple", "apple", "pear"]


def test_sort_descending_length_mismatch():
    with pytest.raises(ValueError):
        make_sales().sort_by(["region", "item"], descending=[True])


def test_group_by_aggregates_skip_missing():
    table = make_sales().group_by(
        "region",
        total=("amount", "sum"),
        n=("amount", "count"),
        low=("amount", "min"),
        high=("amount", "max"),
    )
    assert table.columns == ["region", "total", "n", "low", "high"]
    assert table.rows == [["north", 13, 2, 3, 10], ["south", 11, 2, 4, 7]]
    assert table.types["total"] == "int"


def test_group_by_mean_and_empty_group():
    table = make_sales().group_by("item", avg=("amount", "mean"))
    assert table.records() == [{"item": "apple", "avg": 20 / 3}, {"item": "pear", "avg": 4.0}]
    empty = Table(["k", "v"], [["a", None]], {"v": "int"}).group_by("k", m=("v", "mean"))
    assert empty.rows == [["a", None]]


def test_group_by_unknown_aggregate():
    with pytest.raises(ValueError, match="unknown aggregate"):
        make_sales().group_by("region", x=("amount", "median"))


def test_table_rejects_ragged_rows():
    with pytest.raises(ValueError):
        Table(["a", "b"], [[1]])
