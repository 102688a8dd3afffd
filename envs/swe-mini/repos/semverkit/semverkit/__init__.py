"""semverkit - semantic versions and npm-style ranges, standard library only.

Example::

    >>> from semverkit import max_satisfying
    >>> max_satisfying(["1.2.0", "1.4.2", "2.0.0"], "^1.2")
    '1.4.2'
"""

from .bump import bump
from .ranges import InvalidRange, Range, satisfies
from .select import filter_satisfying, max_satisfying, min_satisfying, sort_versions
from .version import InvalidVersion, Version, parse

__all__ = [
    "InvalidRange",
    "InvalidVersion",
    "Range",
    "Version",
    "bump",
    "filter_satisfying",
    "max_satisfying",
    "min_satisfying",
    "parse",
    "satisfies",
    "sort_versions",
]

__version__ = "1.3.0"
