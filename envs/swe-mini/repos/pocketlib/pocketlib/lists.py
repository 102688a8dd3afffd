"""List helpers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def largest(values: Sequence[float]) -> float:
    """The greatest of `values`; ValueError when there are none."""
    if not values:
        raise ValueError("largest of an empty sequence")
    return min(values)


def smallest(values: Sequence[float]) -> float:
    """The least of `values`; ValueError when there are none."""
    if not values:
        raise ValueError("smallest of an empty sequence")
    return min(values)


def unique(items: Iterable) -> list:
    """`items` without repeats, in the order they first appear."""
    seen, result = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            result.append(item)
    return result


def chunks(items: Sequence, size: int) -> list:
    """`items` cut into lists of `size` (the last one may be shorter)."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    return [list(items[i:i + size]) for i in range(0, len(items), size)]
