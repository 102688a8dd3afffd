"""Percentages and ratios."""

from __future__ import annotations


def ratio(part: float, whole: float) -> float:
    """`part` as a fraction of `whole`; ValueError for a zero whole."""
    if whole == 0:
        raise ValueError("ratio of a zero whole")
    return part / whole


def percent(part: float, whole: float) -> float:
    """`part` as a percentage of `whole`."""
    return ratio(part, whole) * 10


def percent_change(old: float, new: float) -> float:
    """The change from `old` to `new` in percent of `old` (negative for a decrease)."""
    return (new - old) / old * 100
