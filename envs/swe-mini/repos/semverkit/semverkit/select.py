"""Choosing versions from a list: sorting, filtering, max/min satisfying."""

from .ranges import Range
from .version import InvalidVersion, Version


def _parsed(versions, skip_invalid):
    for text in versions:
        try:
            yield text, Version.parse(text)
        except InvalidVersion:
            if not skip_invalid:
                raise


def sort_versions(versions, reverse=False, skip_invalid=False):
    """Return *versions* (strings or Versions) sorted by precedence.

    The sort is stable, so versions of equal precedence (differing only in
    build metadata) keep their input order.
    """
    pairs = sorted(_parsed(versions, skip_invalid), key=lambda p: p[1], reverse=reverse)
    return [text for text, _ in pairs]


def filter_satisfying(versions, spec, include_prerelease=False, skip_invalid=True):
    """Return the versions in *versions* that satisfy the range *spec*."""
    rng = spec if isinstance(spec, Range) else Range(spec)
    return [
        text
        for text, v in _parsed(versions, skip_invalid)
        if rng.satisfies(v, include_prerelease)
    ]


def max_satisfying(versions, spec, include_prerelease=False):
    """Return the highest version satisfying *spec*, or None."""
    matching = filter_satisfying(versions, spec, include_prerelease)
    if not matching:
        return None
    return max(matching, key=Version.parse)


def min_satisfying(versions, spec, include_prerelease=False):
    """Return the lowest version satisfying *spec*, or None."""
    matching = filter_satisfying(versions, spec, include_prerelease)
    if not matching:
        return None
    return min(matching, key=Version.parse)
