from decimal import Decimal

import pytest

from moneyfmt import Money, ParseError, format_money, parse_money


def test_format_us_dollars():
    assert format_money(Money("1234.5", "USD")) == "$1,234.50"
    assert format_money(Money("0.99", "USD")) == "$0.99"
    assert format_money(Money("1234567.891", "USD")) == "$1,234,567.89"


def test_format_german_euros():
    assert format_money(Money("1234.5", "EUR"), "de_DE") == "1.234,50 €"
    assert format_money(Money("-7.25", "EUR"), "de-DE") == "-7,25 €"


def test_format_negative_in_parentheses():
    assert format_money(Money("-1234.5", "USD"), negative="parens") == "($1,234.50)"


def test_format_respects_minor_units():
    assert format_money(Money("1234.5", "JPY")) == "¥1,234"
    assert format_money(Money("12.345", "KWD")) == "KD 12.345"


def test_format_with_iso_code_and_other_locales():
    assert format_money(Money("2500", "CHF"), "de_CH") == "CHF 2'500.00"
    assert format_money(Money("42.1", "EUR"), "fr_FR", use_code=True) == "42,10 EUR"
    assert format_money(Money("1234.5", "EUR"), "fr_FR") == "1\u202f234,50 €"


def test_parse_simple_amounts():
    assert parse_money("$1,234.50") == Money("1234.50", "USD")
    assert parse_money("1.234,50 €", "de_DE") == Money("1234.50", "EUR")
    assert parse_money("GBP 12.5") == Money("12.50", "GBP")


def test_parse_negative_forms():
    assert parse_money("($1,234.50)") == Money("-1234.50", "USD")
    assert parse_money("-12,00 €", "de_DE") == Money("-12", "EUR")


def test_parse_with_explicit_currency():
    assert parse_money("1,500", currency="JPY") == Money("1500", "JPY")


def test_parse_rejects_bad_input():
    with pytest.raises(ParseError):
        parse_money("$12.345")  # too many decimals for USD
    with pytest.raises(ParseError):
        parse_money("$12,34.00")  # misplaced group separator
    with pytest.raises(ParseError):
        parse_money("12.00")  # no currency
    with pytest.raises(ParseError):
        parse_money("   ")


def test_format_parse_round_trip():
    for money, locale in [
        (Money("-98765.43", "USD"), "en_US"),
        (Money("1234.5", "EUR"), "de_DE"),
        (Money("2500", "CHF"), "de_CH"),
        (Money("7.125", "KWD"), "en_US"),
    ]:
        text = format_money(money, locale, negative="parens")
        assert parse_money(text, locale) == money
