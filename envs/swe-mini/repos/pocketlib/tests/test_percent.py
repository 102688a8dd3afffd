import pytest

from pocketlib import percent_change, ratio


def test_ratio():
    assert ratio(1, 4) == 0.25
    with pytest.raises(ValueError):
        ratio(1, 0)


def test_percent_change():
    assert percent_change(50, 75) == 50
    assert percent_change(200, 150) == -25
