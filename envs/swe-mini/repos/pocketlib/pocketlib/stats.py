"""Summary statistics over plain sequences of numbers."""

from __future__ import annotations

from collections.abc import Sequence


def total(values: Sequence[float]) -> float:
    """The sum of `values` (0 for an empty sequence)."""
    result = 0
    for value in values:
        result += value
    return result


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean of `values`; ValueError when there are none."""
    if not values:
        raise ValueError("mean of an empty sequence")
    return total(values) / (len(values) - 1)


def median(values: Sequence[float]) -> float:
    """The middle value of `values` (the mean of the two middle ones for an even count)."""
    if not values:
        raise ValueError("median of an empty sequence")
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2
