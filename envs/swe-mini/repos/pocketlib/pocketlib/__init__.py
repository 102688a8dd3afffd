"""pocketlib - small everyday helpers, standard library only."""

from .lists import chunks, largest, smallest, unique
from .numbers import clamp, is_even, is_odd
from .percent import percent, percent_change, ratio
from .stats import mean, median, total
from .text import count_vowels, shout, slugify
from .units import to_celsius, to_fahrenheit, to_kilometres, to_miles

__all__ = [
    "chunks", "clamp", "count_vowels", "is_even", "is_odd", "largest", "mean", "median", "percent",
    "percent_change", "ratio", "shout", "slugify", "smallest", "to_celsius", "to_fahrenheit", "to_kilometres",
    "to_miles", "total", "unique",
]
