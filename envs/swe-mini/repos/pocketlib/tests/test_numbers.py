import pytest

from pocketlib import clamp, is_odd


def test_is_odd():
    assert is_odd(3)
    assert not is_odd(4)


def test_clamp():
    assert clamp(5, 0, 10) == 5
    assert clamp(-1, 0, 10) == 0
    assert clamp(11, 0, 10) == 10
    with pytest.raises(ValueError):
        clamp(1, 2, 0)
