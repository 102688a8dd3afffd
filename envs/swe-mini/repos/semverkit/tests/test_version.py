import pytest

from semverkit import InvalidVersion, Version, bump, parse


def test_parse_full_version():
    v = parse("1.2.3-alpha.1+build.5")
    assert (v.major, v.minor, v.patch) == (1, 2, 3)
    assert v.prerelease == ("alpha", "1")
    assert v.build == ("build", "5")


def test_parse_accepts_leading_v():
    assert str(parse("v2.0.1")) == "2.0.1"


def test_parse_rejects_invalid():
    for text in ["1.2", "01.2.3", "1.2.3-", "1.2.3-01", "1.2.3+", "a.b.c"]:
        with pytest.raises(InvalidVersion):
            parse(text)


def test_str_round_trip():
    for text in ["0.0.1", "10.20.30", "1.0.0-rc.1", "1.0.0+sha.abc", "1.0.0-x-y.3+z"]:
        assert str(parse(text)) == text


def test_release_ordering():
    assert parse("1.2.3") < parse("1.2.4") < parse("1.3.0") < parse("2.0.0")
    assert parse("1.10.0") > parse("1.9.0")


def test_prerelease_has_lower_precedence_than_release():
    assert parse("1.0.0-rc.1") < parse("1.0.0")
    assert parse("1.0.0-rc.1") > parse("0.9.9")


def test_spec_prerelease_chain():
    chain = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
             "1.0.0-beta.2", "1.0.0-rc.1", "1.0.0"]
    versions = [parse(t) for t in chain]
    assert versions == sorted(versions)
    assert sorted(reversed(versions)) == versions


def test_build_metadata_is_ignored_for_precedence():
    a, b = parse("1.0.0+a"), parse("1.0.0+b")
    assert a == b and hash(a) == hash(b)
    assert not a < b


def test_compare_accepts_strings():
    assert parse("1.0.0").compare("1.0.1") == -1
    assert parse("1.0.0").compare("1.0.0+x") == 0


def test_versions_are_immutable():
    v = Version(1, 2, 3)
    with pytest.raises(AttributeError):
        v.major = 2
    assert v.replace(patch=4) == Version(1, 2, 4)


def test_bump_release_parts():
    assert str(bump("1.2.3+meta", "patch")) == "1.2.4"
    assert str(bump("1.2.3", "minor")) == "1.3.0"
    assert str(bump("1.2.3", "major")) == "2.0.0"


def test_bump_finishes_prerelease():
    assert str(bump("2.0.0-rc.1", "major")) == "2.0.0"
    assert str(bump("1.3.0-beta", "minor")) == "1.3.0"
    assert str(bump("1.2.4-rc.0", "patch")) == "1.2.4"
    assert str(bump("1.3.1-rc.0", "minor")) == "1.4.0"


def test_bump_prerelease():
    assert str(bump("1.2.3", "prerelease")) == "1.2.4-rc.0"
    assert str(bump("1.2.4-rc.0", "prerelease")) == "1.2.4-rc.1"
    assert str(bump("1.2.4-beta.3", "prerelease", tag="rc")) == "1.2.4-rc.0"
    assert str(bump("1.2.4-rc", "prerelease")) == "1.2.4-rc.0"


def test_bump_unknown_part():
    with pytest.raises(ValueError):
        bump("1.0.0", "micro")
