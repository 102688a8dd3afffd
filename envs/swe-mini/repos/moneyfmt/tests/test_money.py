from decimal import Decimal

import pytest

from moneyfmt import (
    CurrencyMismatchError,
    Money,
    UnknownCurrencyError,
    get_currency,
    quantize,
    sum_money,
)


def test_currency_lookup_is_case_insensitive():
    assert get_currency("usd").code == "USD"
    assert get_currency(" jpy ").minor_units == 0
    assert get_currency("KWD").exponent == Decimal("0.001")


def test_unknown_currency_raises():
    with pytest.raises(UnknownCurrencyError):
        get_currency("XXX")


def test_amount_is_quantized_to_minor_units():
    assert Money("12.5", "USD").amount == Decimal("12.50")
    assert Money("1234.5", "JPY").amount == Decimal("1234")  # half-even
    assert Money("1.2345", "KWD").amount == Decimal("1.234")


def test_float_input_uses_shortest_repr():
    assert Money(0.1, "USD").amount == Decimal("0.10")


def test_explicit_rounding_mode():
    assert Money("10.005", "USD", mode="half_up").amount == Decimal("10.01")
    assert Money("10.005", "USD", mode="half_even").amount == Decimal("10.00")
    assert Money("10.009", "USD", mode="down").amount == Decimal("10.00")


def test_unknown_rounding_mode_is_rejected():
    with pytest.raises(ValueError):
        quantize(Decimal("1.5"), 0, "sideways")


def test_addition_and_subtraction():
    a = Money("10.25", "EUR")
    b = Money("0.80", "EUR")
    assert a + b == Money("11.05", "EUR")
    assert a - b == Money("9.45", "EUR")
    assert -a == Money("-10.25", "EUR")


def test_currency_mismatch_raises():
    with pytest.raises(CurrencyMismatchError):
        Money(1, "USD") + Money(1, "EUR")
    with pytest.raises(CurrencyMismatchError):
        Money(1, "USD") < Money(2, "GBP")


def test_multiply_rounds_result():
    assert Money("19.99", "USD") * 3 == Money("59.97", "USD")
    assert Money("10.00", "USD").multiply("0.0825", mode="half_up") == Money("0.83", "USD")


def test_minor_units_round_trip():
    m = Money.from_minor_units(123456, "KWD")
    assert m.amount == Decimal("123.456")
    assert m.minor_units == 123456
    assert Money.from_minor_units(500, "JPY").amount == Decimal("500")


def test_cash_rounding_to_increment():
    assert Money("1.23", "CHF").round_to("0.05") == Money("1.25", "CHF")
    assert Money("1.22", "CHF").round_to("0.05") == Money("1.20", "CHF")


def test_sum_money_and_builtin_sum():
    items = [Money("1.10", "USD"), Money("2.20", "USD")]
    assert sum_money(items, "USD") == Money("3.30", "USD")
    assert sum(items) == Money("3.30", "USD")
    assert sum_money([], "JPY") == Money.zero("JPY")


def test_money_is_immutable_and_hashable():
    m = Money("5", "USD")
    with pytest.raises(AttributeError):
        m.amount = Decimal("6")
    assert len({Money("5.00", "USD"), Money("5", "USD")}) == 1
