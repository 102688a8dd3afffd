from semverkit import filter_satisfying, max_satisfying, min_satisfying, sort_versions

AVAILABLE = ["1.0.0", "1.2.0", "1.4.2", "2.0.0-rc.1", "2.0.0", "2.1.3", "3.0.0-beta"]


def test_sort_versions():
    shuffled = ["2.0.0", "1.0.0-rc.1", "0.9.0", "1.0.0", "1.0.0-beta"]
    assert sort_versions(shuffled) == ["0.9.0", "1.0.0-beta", "1.0.0-rc.1", "1.0.0", "2.0.0"]
    assert sort_versions(shuffled, reverse=True)[0] == "2.0.0"


def test_sort_is_stable_for_build_metadata():
    assert sort_versions(["1.0.0+b", "0.1.0", "1.0.0+a"]) == ["0.1.0", "1.0.0+b", "1.0.0+a"]


def test_max_satisfying():
    assert max_satisfying(AVAILABLE, "^1.0.0") == "1.4.2"
    assert max_satisfying(AVAILABLE, ">=2") == "2.1.3"
    assert max_satisfying(AVAILABLE, "^4") is None


def test_max_satisfying_with_prereleases():
    assert max_satisfying(AVAILABLE, "*", include_prerelease=True) == "3.0.0-beta"
    assert max_satisfying(AVAILABLE, ">=3.0.0-alpha") == "3.0.0-beta"


def test_min_satisfying():
    assert min_satisfying(AVAILABLE, ">=1.1") == "1.2.0"


def test_filter_skips_invalid_versions():
    assert filter_satisfying(["1.0.0", "latest", "1.5.0"], "1.x") == ["1.0.0", "1.5.0"]
