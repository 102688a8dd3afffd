import pytest

from pocketlib import median, total


def test_total():
    assert total([1, 2, 3.5]) == 6.5
    assert total([]) == 0


def test_median_odd_and_even():
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5


def test_median_of_nothing():
    with pytest.raises(ValueError):
        median([])
