"""Computing the run times of a cron expression."""

from datetime import datetime, timedelta

from cronexpr.errors import CronError
from cronexpr.parser import parse

#: How far ahead :func:`next_run` searches before giving up.
SEARCH_YEARS = 5


def cron_weekday(day):
    """Day of week in cron numbering (Sunday = 0) for a date or datetime."""
    return (day.weekday() + 1) % 7


def day_matches(expr, day):
    """Whether the calendar day of ``day`` is selected by ``expr``.

    When both the day-of-month and day-of-week fields are restricted, a day
    matching either of them is selected (Vixie cron semantics).
    """
    dom_ok = day.day in expr.days
    dow_ok = cron_weekday(day) in expr.weekdays
    if expr.day_restricted and expr.weekday_restricted:
        return dom_ok or dow_ok
    return dom_ok and dow_ok


def _coerce(expr):
    return parse(expr) if isinstance(expr, str) else expr


def matches(expr, dt):
    """Whether ``expr`` fires at the minute of ``dt``."""
    expr = _coerce(expr)
    return (
        dt.month in expr.months
        and day_matches(expr, dt)
        and dt.hour in expr.hours
        and dt.minute in expr.minutes
    )


def _start_of_next_month(dt):
    return dt.replace(month=dt.month + 1, day=1, hour=0, minute=0)


def next_run(expr, start):
    """The first time strictly after ``start`` at which ``expr`` fires.

    ``start`` must be a naive datetime. Raises :class:`CronError` if the
    expression never fires within :data:`SEARCH_YEARS` years (e.g. ``0 0 30 2 *``).
    """
    expr = _coerce(expr)
    if start.tzinfo is not None:
        raise ValueError("cronexpr works with naive datetimes only")
    current = start.replace(second=0, microsecond=0) + timedelta(minutes=1)
    last_year = start.year + SEARCH_YEARS
    while current.year <= last_year:
        if current.month not in expr.months:
            current = _start_of_next_month(current)
        elif not day_matches(expr, current):
            current = current.replace(hour=0, minute=0) + timedelta(days=1)
        elif current.hour not in expr.hours:
            current = current.replace(minute=0) + timedelta(hours=1)
        elif current.minute not in expr.minutes:
            current += timedelta(minutes=1)
        else:
            return current
    raise CronError(f"{expr} has no run time within {SEARCH_YEARS} years of {start}")


def next_runs(expr, start, count=1):
    """The next ``count`` run times after ``start``, in increasing order."""
    if count < 0:
        raise ValueError("count must not be negative")
    expr = _coerce(expr)
    runs = []
    current = start
    for _ in range(count):
        current = next_run(expr, current)
        runs.append(current)
    return runs
