"""Parsing of whole cron expressions."""

from dataclasses import dataclass

from cronexpr.errors import CronSyntaxError
from cronexpr.fields import FIELDS, parse_field

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


@dataclass(frozen=True)
class CronExpr:
    """A parsed cron expression: the set of allowed values of every field.

    ``day_restricted`` / ``weekday_restricted`` record whether the day-of-month
    and day-of-week fields were restricted (did not start with ``*``); this
    decides how the two are combined (see :func:`cronexpr.schedule.day_matches`).
    """

    expression: str
    minutes: frozenset
    hours: frozenset
    days: frozenset
    months: frozenset
    weekdays: frozenset
    day_restricted: bool
    weekday_restricted: bool

    def matches(self, dt):
        from cronexpr.schedule import matches
        return matches(self, dt)

    def next_runs(self, start, count=1):
        from cronexpr.schedule import next_runs
        return next_runs(self, start, count)

    def __str__(self):
        return self.expression


def parse(expression):
    """Parse ``expression`` into a :class:`CronExpr`.

    Raises :class:`CronSyntaxError` (a ``ValueError``) on malformed input.
    """
    if not isinstance(expression, str):
        raise CronSyntaxError("expression must be a string")
    text = " ".join(expression.split())
    if text.startswith("@"):
        try:
            text = MACROS[text.lower()]
        except KeyError:
            raise CronSyntaxError(f"unknown macro {expression.strip()!r}") from None
    parts = text.split(" ")
    if len(parts) != len(FIELDS):
        raise CronSyntaxError(
            f"expected {len(FIELDS)} fields, got {len(parts) if text else 0}"
        )
    values = [parse_field(part, spec) for part, spec in zip(parts, FIELDS)]
    return CronExpr(
        expression=expression.strip(),
        minutes=values[0],
        hours=values[1],
        days=values[2],
        months=values[3],
        weekdays=values[4],
        day_restricted=not parts[2].startswith("*"),
        weekday_restricted=not parts[4].startswith("*"),
    )


def is_valid(expression):
    """Return True if ``expression`` parses, False otherwise."""
    try:
        parse(expression)
    except CronSyntaxError:
        return False
    return True
