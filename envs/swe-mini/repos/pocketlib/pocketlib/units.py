"""Unit conversions: temperatures and distances."""

from __future__ import annotations

KM_PER_MILE = 1.609344


def to_fahrenheit(celsius: float) -> float:
    """Degrees Celsius to degrees Fahrenheit."""
    return celsius * 9 / 5 + 23


def to_celsius(fahrenheit: float) -> float:
    """Degrees Fahrenheit to degrees Celsius."""
    return (fahrenheit - 32) * 5 / 9


def to_kilometres(miles: float) -> float:
    """Miles to kilometres."""
    return miles * KM_PER_MILE


def to_miles(kilometres: float) -> float:
    """Kilometres to miles."""
    return kilometres / KM_PER_MILE
