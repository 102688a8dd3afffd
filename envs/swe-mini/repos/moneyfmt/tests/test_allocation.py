from decimal import Decimal

import pytest

from moneyfmt import Money, allocate, allocate_percentages, split


def test_split_evenly_gives_extra_cent_to_first_part():
    parts = split(Money("100", "USD"), 3)
    assert [p.amount for p in parts] == [Decimal("33.34"), Decimal("33.33"), Decimal("33.33")]
    assert sum(parts) == Money("100", "USD")


def test_allocate_by_ratios():
    parts = allocate(Money("0.05", "USD"), [3, 7])
    assert [p.amount for p in parts] == [Decimal("0.02"), Decimal("0.03")]


def test_allocate_zero_decimal_currency():
    parts = allocate(Money("1000", "JPY"), [1, 1, 1])
    assert [p.amount for p in parts] == [Decimal("334"), Decimal("333"), Decimal("333")]


def test_allocate_three_decimal_currency():
    parts = split(Money("10", "KWD"), 3)
    assert [p.amount for p in parts] == [Decimal("3.334"), Decimal("3.333"), Decimal("3.333")]


def test_zero_ratio_part_gets_nothing():
    parts = allocate(Money("10", "USD"), [0, 1, 2])
    assert parts[0].is_zero()
    assert sum(parts) == Money("10", "USD")


def test_allocate_percentages_must_total_100():
    parts = allocate_percentages(Money("200", "EUR"), [50, "25.5", "24.5"])
    assert [p.amount for p in parts] == [Decimal("100.00"), Decimal("51.00"), Decimal("49.00")]
    with pytest.raises(ValueError):
        allocate_percentages(Money("200", "EUR"), [50, 40])


def test_invalid_ratios_are_rejected():
    with pytest.raises(ValueError):
        allocate(Money("1", "USD"), [])
    with pytest.raises(ValueError):
        allocate(Money("1", "USD"), [0, 0])
    with pytest.raises(ValueError):
        allocate(Money("1", "USD"), [1, -1])
