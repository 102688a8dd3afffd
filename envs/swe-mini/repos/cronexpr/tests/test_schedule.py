from datetime import datetime, timezone

import pytest

from cronexpr import matches, next_run, next_runs, parse


def test_every_fifteen_minutes():
    runs = next_runs("*/15 * * * *", datetime(2024, 5, 1, 10, 7), 3)
    assert runs == [
        datetime(2024, 5, 1, 10, 15),
        datetime(2024, 5, 1, 10, 30),
        datetime(2024, 5, 1, 10, 45),
    ]


def test_result_is_strictly_after_start():
    assert next_run("30 9 * * *", datetime(2024, 5, 1, 9, 30)) == datetime(2024, 5, 2, 9, 30)
    assert next_run("30 9 * * *", datetime(2024, 5, 1, 9, 29, 59)) == datetime(2024, 5, 1, 9, 30)


def test_weekdays_skip_weekend():
    runs = next_runs(parse("30 9 * * MON-FRI"), datetime(2024, 3, 1, 12, 0), 3)
    assert runs == [
        datetime(2024, 3, 4, 9, 30),
        datetime(2024, 3, 5, 9, 30),
        datetime(2024, 3, 6, 9, 30),
    ]


def test_day_of_month_skips_short_months():
    runs = next_runs("0 6 31 * *", datetime(2024, 3, 31, 7, 0), 2)
    assert runs == [datetime(2024, 5, 31, 6, 0), datetime(2024, 7, 31, 6, 0)]


def test_leap_day():
    assert next_run("0 0 29 2 *", datetime(2024, 1, 10)) == datetime(2024, 2, 29)


def test_day_and_weekday_combined_with_or():
    runs = next_runs("0 0 1,15 * MON", datetime(2024, 4, 1), 4)
    assert runs == [
        datetime(2024, 4, 8), datetime(2024, 4, 15),
        datetime(2024, 4, 22), datetime(2024, 4, 29),
    ]


def test_star_day_with_weekday_restricts_to_weekday():
    runs = next_runs("0 8 * * SUN", datetime(2024, 6, 1), 2)
    assert runs == [datetime(2024, 6, 2, 8, 0), datetime(2024, 6, 9, 8, 0)]


def test_month_restriction_within_year():
    assert next_run("15 10 * JUN *", datetime(2024, 3, 15)) == datetime(2024, 6, 1, 10, 15)


def test_hourly_crosses_midnight_and_year():
    runs = next_runs("@hourly", datetime(2023, 12, 31, 23, 5), 2)
    assert runs == [datetime(2024, 1, 1, 0, 0), datetime(2024, 1, 1, 1, 0)]


def test_matches():
    expr = parse("0 9-17 * * 1-5")
    assert matches(expr, datetime(2024, 3, 4, 9, 0))
    assert not matches(expr, datetime(2024, 3, 3, 9, 0))
    assert expr.matches(datetime(2024, 3, 4, 17, 0))
    assert not expr.matches(datetime(2024, 3, 4, 17, 1))


def test_aware_datetimes_rejected_and_count_checked():
    with pytest.raises(ValueError):
        next_run("* * * * *", datetime(2024, 1, 1, tzinfo=timezone.utc))
    with pytest.raises(ValueError):
        next_runs("* * * * *", datetime(2024, 1, 1), -1)
    assert next_runs("* * * * *", datetime(2024, 1, 1), 0) == []
