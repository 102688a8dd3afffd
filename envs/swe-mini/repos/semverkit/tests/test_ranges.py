import pytest

from semverkit import InvalidRange, Range, satisfies


def test_exact_and_primitive_comparators():
    assert satisfies("1.2.3", "1.2.3")
    assert satisfies("1.2.3", "=1.2.3")
    assert satisfies("1.2.3", ">=1.2.3 <2.0.0")
    assert not satisfies("2.0.0", ">=1.2.3 <2.0.0")
    assert satisfies("1.2.4", ">1.2.3")


def test_operators_with_space():
    assert satisfies("1.5.0", ">= 1.2 < 2")


def test_caret_major():
    rng = Range("^1.2.3")
    assert rng.satisfies("1.2.3") and rng.satisfies("1.9.9")
    assert not rng.satisfies("1.2.2") and not rng.satisfies("2.0.0")


def test_caret_zero_major():
    rng = Range("^0.2.3")
    assert rng.satisfies("0.2.9")
    assert not rng.satisfies("0.3.0")


def test_caret_partial():
    assert str(Range("^1.2")) == ">=1.2.0 <2.0.0"
    assert str(Range("^0.x")) == ">=0.0.0 <1.0.0"


def test_tilde():
    assert str(Range("~1.2.3")) == ">=1.2.3 <1.3.0"
    assert str(Range("~1.2")) == ">=1.2.0 <1.3.0"
    assert str(Range("~1")) == ">=1.0.0 <2.0.0"


def test_wildcards_and_partials():
    assert str(Range("1.x")) == ">=1.0.0 <2.0.0"
    assert str(Range("1.2.*")) == ">=1.2.0 <1.3.0"
    assert str(Range("*")) == "*"
    assert str(Range("<=1.2")) == "<1.3.0"
    assert str(Range(">1.2")) == ">=1.3.0"


def test_hyphen_range():
    assert str(Range("1.2.3 - 2.3.4")) == ">=1.2.3 <=2.3.4"
    assert str(Range("1.2 - 2.3")) == ">=1.2.0 <2.4.0"
    assert satisfies("2.3.4", "1.2.3 - 2.3.4")


def test_or_ranges():
    rng = Range("<1.0.0 || >=3.0.0")
    assert rng.satisfies("0.5.0") and rng.satisfies("3.1.0")
    assert not rng.satisfies("2.0.0")


def test_prerelease_excluded_unless_same_tuple():
    assert not satisfies("2.0.0-rc.1", "<2.0.0")
    assert satisfies("2.0.0-rc.2", ">=2.0.0-rc.1")
    assert not satisfies("2.1.0-rc.1", ">=2.0.0-rc.1")
    assert satisfies("2.0.0-rc.1", "<2.0.0", include_prerelease=True)


def test_invalid_range():
    with pytest.raises(InvalidRange):
        Range(">=1.2.3.4")
    with pytest.raises(InvalidRange):
        Range("^banana")
