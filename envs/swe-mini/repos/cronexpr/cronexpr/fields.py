"""Field definitions and parsing of a single cron field."""

from dataclasses import dataclass, field

from cronexpr.errors import CronSyntaxError

MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN",
               "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")


@dataclass(frozen=True)
class FieldSpec:
    """Allowed range and name aliases of one cron field."""

    name: str
    low: int
    high: int
    aliases: dict = field(default_factory=dict, hash=False)
    wrap_high: bool = False

    def all_values(self):
        return frozenset(self.normalize(v) for v in range(self.low, self.high + 1))

    def normalize(self, value):
        """Map equivalent values onto one (7 -> 0 for weekdays)."""
        if self.wrap_high and value == self.high:
            return self.low
        return value


MINUTE = FieldSpec("minute", 0, 59)
HOUR = FieldSpec("hour", 0, 23)
DAY = FieldSpec("day of month", 1, 31)
MONTH = FieldSpec("month", 1, 12, {name: i for i, name in enumerate(MONTH_NAMES, 1)})
WEEKDAY = FieldSpec("day of week", 0, 7, {name: i for i, name in enumerate(WEEKDAY_NAMES)},
                   wrap_high=True)

FIELDS = (MINUTE, HOUR, DAY, MONTH, WEEKDAY)


def parse_value(token, spec):
    """Parse a single number or name and check it lies within ``spec``."""
    key = token.strip().upper()
    if key in spec.aliases:
        return spec.aliases[key]
    if not key.isdigit():
        raise CronSyntaxError(f"invalid value {token!r}", spec.name)
    value = int(key)
    if not spec.low <= value <= spec.high:
        raise CronSyntaxError(
            f"value {value} out of range {spec.low}-{spec.high}", spec.name
        )
    return value


def _parse_step(text, spec):
    if not text.isdigit() or int(text) == 0:
        raise CronSyntaxError(f"invalid step {text!r}", spec.name)
    return int(text)


def parse_field(text, spec):
    """Return the frozenset of values selected by field ``text``."""
    values = set()
    for part in text.split(","):
        if not part:
            raise CronSyntaxError(f"empty list item in {text!r}", spec.name)
        base, sep, step_text = part.partition("/")
        step = _parse_step(step_text, spec) if sep else 1
        if base == "*":
            values.update(v for v in range(spec.low, spec.high + 1) if v % step == 0)
            continue
        if "-" in base:
            first, _, last = base.partition("-")
            start, end = parse_value(first, spec), parse_value(last, spec)
            if start > end:
                raise CronSyntaxError(f"range {base!r} is reversed", spec.name)
        else:
            start = parse_value(base, spec)
            end = spec.high if sep else start
        values.update(range(start, end + 1, step))
    return frozenset(spec.normalize(v) for v in values)
