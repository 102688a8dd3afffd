import pytest

from cronexpr import CronSyntaxError, is_valid, parse
from cronexpr.fields import DAY, MINUTE, MONTH, WEEKDAY, parse_field


def test_star_selects_whole_range():
    expr = parse("* * * * *")
    assert expr.minutes == frozenset(range(60))
    assert expr.hours == frozenset(range(24))
    assert expr.days == frozenset(range(1, 32))
    assert expr.months == frozenset(range(1, 13))
    assert expr.weekdays == frozenset(range(7))
    assert not expr.day_restricted and not expr.weekday_restricted


def test_lists_ranges_and_steps():
    assert parse_field("1,5,10-12", MINUTE) == {1, 5, 10, 11, 12}
    assert parse_field("*/15", MINUTE) == {0, 15, 30, 45}
    assert parse_field("10-30/10", MINUTE) == {10, 20, 30}
    assert parse_field("5/20", MINUTE) == {5, 25, 45}
    assert parse_field("1-10/4", DAY) == {1, 5, 9}


def test_names_are_case_insensitive():
    expr = parse("0 0 * jan-Mar mon,FRI")
    assert expr.months == {1, 2, 3}
    assert expr.weekdays == {1, 5}


def test_sunday_as_seven():
    assert parse_field("7", WEEKDAY) == {0}
    assert parse_field("5-7", WEEKDAY) == {5, 6, 0}
    assert parse_field("*", WEEKDAY) == frozenset(range(7))


def test_macros_expand():
    assert parse("@daily").minutes == {0}
    assert parse("@weekly").weekdays == {0}
    assert parse("@MONTHLY").days == {1}
    assert str(parse("  @hourly ")) == "@hourly"


def test_extra_whitespace_is_ignored():
    expr = parse("  0   12\t* *  1 ")
    assert expr.hours == {12}
    assert expr.weekday_restricted


@pytest.mark.parametrize("expression", [
    "* * * *", "60 * * * *", "* * 0 * *", "*/0 * * * *", "5-1 * * * *",
    "1,,2 * * * *", "@fortnightly",
])
def test_invalid_expressions(expression):
    assert not is_valid(expression)
    with pytest.raises(CronSyntaxError):
        parse(expression)


def test_error_mentions_field():
    with pytest.raises(CronSyntaxError) as info:
        parse("* * * 13 *")
    assert info.value.field == "month"
    assert "out of range" in str(info.value)


def test_month_names_only_in_month_field():
    assert parse_field("DEC", MONTH) == {12}
    with pytest.raises(CronSyntaxError):
        parse_field("DEC", DAY)
