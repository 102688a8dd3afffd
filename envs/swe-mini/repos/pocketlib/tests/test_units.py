import pytest

from pocketlib import to_celsius, to_kilometres, to_miles


def test_to_celsius():
    assert to_celsius(212) == 100
    assert to_celsius(32) == 0


def test_distances_round_trip():
    assert to_kilometres(1) == pytest.approx(1.609344)
    assert to_miles(to_kilometres(26.2)) == pytest.approx(26.2)
