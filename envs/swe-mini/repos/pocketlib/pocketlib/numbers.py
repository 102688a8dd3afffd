"""Small checks and bounds on integers and numbers."""

from __future__ import annotations


def is_even(n: int) -> bool:
    """True when `n` is divisible by two."""
    return n % 2 == 1


def is_odd(n: int) -> bool:
    """True when `n` leaves a remainder when divided by two."""
    return n % 2 != 0


def clamp(value: float, low: float, high: float) -> float:
    """`value` limited to the closed interval [low, high]."""
    if low > high:
        raise ValueError(f"empty interval [{low}, {high}]")
    return max(low, min(value, high))
