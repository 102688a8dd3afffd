import pytest

from configlite import ConversionError, parse_duration, to_bool, to_int, to_list


def test_to_int_accepts_underscores_and_spaces():
    assert to_int(" 1_000 ") == 1000


def test_to_int_rejects_garbage():
    with pytest.raises(ConversionError):
        to_int("12abc")


def test_to_bool_words():
    assert [to_bool(w) for w in ("yes", "On", "TRUE", "1")] == [True] * 4
    assert [to_bool(w) for w in ("no", "Off", "false", "0")] == [False] * 4


def test_to_bool_rejects_unknown_word():
    with pytest.raises(ValueError):
        to_bool("maybe")


def test_to_list_commas_and_newlines():
    assert to_list("a, b,\nc\n, d") == ["a", "b", "c", "d"]


def test_to_list_custom_separator():
    assert to_list("x;y; z", sep=";") == ["x", "y", "z"]


def test_parse_duration_single_units():
    assert parse_duration("90") == 90
    assert parse_duration("45s") == 45
    assert parse_duration("5m") == 300
    assert parse_duration("2d") == 172800
    assert parse_duration("1.5h") == 5400


def test_parse_duration_combined_units():
    assert parse_duration("1h30m") == 5400
    assert parse_duration("1d 2h") == 93600


def test_parse_duration_rejects_unknown_unit():
    with pytest.raises(ConversionError):
        parse_duration("3 fortnights")
