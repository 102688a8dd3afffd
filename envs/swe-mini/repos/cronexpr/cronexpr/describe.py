"""Human-readable English descriptions of cron expressions."""

from cronexpr.fields import DAY, HOUR, MINUTE, MONTH, WEEKDAY
from cronexpr.parser import parse

DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday",
             "Thursday", "Friday", "Saturday")
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July",
               "August", "September", "October", "November", "December")


def _join(words):
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def _listing(values, name=str):
    """'1', '1 and 15', '1, 5 and 9' or '1 through 5' for consecutive runs."""
    ordered = sorted(values)
    if len(ordered) >= 3 and ordered[-1] - ordered[0] == len(ordered) - 1:
        return f"{name(ordered[0])} through {name(ordered[-1])}"
    return _join([name(v) for v in ordered])


def _step(values, spec):
    """Return n if ``values`` is exactly every n-th value of ``spec`` (n > 1)."""
    ordered = sorted(values)
    if len(ordered) < 3 or ordered[0] != spec.low:
        return None
    step = ordered[1] - ordered[0]
    if step > 1 and ordered == list(range(spec.low, spec.high + 1, step)):
        return step
    return None


def _time_phrase(expr):
    minutes, hours = expr.minutes, expr.hours
    if len(minutes) == 1 and len(hours) == 1:
        return f"At {min(hours):02d}:{min(minutes):02d}"
    every_hour = hours == HOUR.all_values()
    if len(minutes) == 1 and every_hour:
        return f"At minute {min(minutes)} past every hour"
    if minutes == MINUTE.all_values():
        phrase = "Every minute"
    elif _step(minutes, MINUTE):
        phrase = f"Every {_step(minutes, MINUTE)} minutes"
    else:
        label = "minute" if len(minutes) == 1 else "minutes"
        phrase = f"At {label} {_listing(minutes)}"
    if every_hour:
        return phrase
    if _step(hours, HOUR):
        return f"{phrase}, every {_step(hours, HOUR)} hours"
    label = "hour" if len(hours) == 1 else "hours"
    return f"{phrase}, during {label} {_listing(hours)}"


def _day_phrase(expr):
    parts = []
    if expr.days != DAY.all_values():
        step = _step(expr.days, DAY)
        if step:
            parts.append(f"every {step} days")
        else:
            label = "day" if len(expr.days) == 1 else "days"
            parts.append(f"on {label} {_listing(expr.days)} of the month")
    if expr.weekdays != WEEKDAY.all_values():
        parts.append(f"on {_listing(expr.weekdays, lambda d: DAY_NAMES[d])}")
    either = expr.day_restricted and expr.weekday_restricted
    return (" or " if either else ", ").join(parts)


def _month_phrase(expr):
    if expr.months == MONTH.all_values():
        return ""
    step = _step(expr.months, MONTH)
    if step:
        return f"every {step} months"
    return f"in {_listing(expr.months, lambda m: MONTH_NAMES[m - 1])}"


def describe(expr):
    """Describe ``expr`` (a :class:`CronExpr` or a string) in plain English."""
    if isinstance(expr, str):
        expr = parse(expr)
    phrases = [_time_phrase(expr), _day_phrase(expr), _month_phrase(expr)]
    return ", ".join(p for p in phrases if p)
