import pytest

from pocketlib import chunks, smallest, unique


def test_smallest():
    assert smallest([3, 9, 4]) == 3
    with pytest.raises(ValueError):
        smallest([])


def test_unique_keeps_first_order():
    assert unique([3, 1, 3, 2, 1]) == [3, 1, 2]


def test_chunks():
    assert chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
