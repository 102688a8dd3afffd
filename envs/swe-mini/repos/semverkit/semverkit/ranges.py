"""Range specifiers in the style of npm: ``^1.2``, ``~1.2.3``, ``>=1 <2``,
``1.2.3 - 2.0``, ``1.x || >=3.0.0``.

A range is parsed into a list of *comparator sets* joined by ``||``; each
set is a list of simple ``(operator, Version)`` comparators that must all
hold.  Wildcards (``x``, ``X``, ``*``) and partial versions are expanded
while parsing.
"""

import operator
import re

from .version import InvalidVersion, Version

_OPS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "=": operator.eq,
}

_WILD = r"0|[1-9]\d*|[xX*]"
_PARTIAL_RE = re.compile(
    rf"^v?(?P<major>{_WILD})(?:\.(?P<minor>{_WILD})(?:\.(?P<patch>{_WILD})"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?)?)?$"
)
_COMPARATOR_RE = re.compile(r"^(?P<op>\^|~|>=|<=|>|<|=)?\s*(?P<version>\S+)$")
_HYPHEN_RE = re.compile(r"^(?P<low>\S+)\s+-\s+(?P<high>\S+)$")


class InvalidRange(ValueError):
    """Raised for a range specifier that cannot be parsed."""


def _parse_partial(text):
    """Return ``(major, minor, patch, prerelease)``; wildcards become None."""
    match = _PARTIAL_RE.match(text)
    if not match:
        raise InvalidRange(f"invalid version in range: {text!r}")
    numbers = []
    for name in ("major", "minor", "patch"):
        value = match.group(name)
        if value is None or value in "xX*" or (numbers and numbers[-1] is None):
            numbers.append(None)
        else:
            numbers.append(int(value))
    pre = match.group("pre") or ""
    return numbers[0], numbers[1], numbers[2], pre


def _floor(major, minor, patch, pre=""):
    return Version(major or 0, minor or 0, patch or 0, pre if patch is not None else "")


def _next_up(major, minor, patch):
    """Smallest version above every version matching a partial version."""
    if minor is None:
        return Version(major + 1, 0, 0)
    if patch is None:
        return Version(major, minor + 1, 0)
    return Version(major, minor, patch + 1)


def _caret(major, minor, patch, pre):
    """``^`` allows changes that do not modify the left-most non-zero part."""
    if major is None:
        return []
    lower = _floor(major, minor, patch, pre)
    if major != 0 or minor is None:
        upper = Version(major + 1, 0, 0)
    else:
        upper = Version(0, minor + 1, 0)
    return [(">=", lower), ("<", upper)]


def _tilde(major, minor, patch, pre):
    """``~`` allows patch-level changes (minor-level if only major is given)."""
    if major is None:
        return []
    lower = _floor(major, minor, patch, pre)
    upper = Version(major + 1, 0, 0) if minor is None else Version(major, minor + 1, 0)
    return [(">=", lower), ("<", upper)]


def _primitive(op, major, minor, patch, pre):
    """Expand ``>``, ``>=``, ``<``, ``<=``, ``=`` or a bare partial version."""
    if major is None:
        return [("<", Version(0, 0, 0))] if op in ("<", ">") else []
    if patch is not None:
        return [(op or "=", Version(major, minor, patch, pre))]
    if op in ("", "="):
        return [(">=", _floor(major, minor, patch)), ("<", _next_up(major, minor, patch))]
    if op == ">":
        return [(">=", _next_up(major, minor, patch))]
    if op == "<=":
        return [("<", _next_up(major, minor, patch))]
    return [(op, _floor(major, minor, patch))]


def _parse_set(text):
    """Parse one ``||``-free comparator set into simple comparators."""
    text = text.strip()
    hyphen = _HYPHEN_RE.match(text)
    if hyphen:
        low = _parse_partial(hyphen.group("low"))
        high = _parse_partial(hyphen.group("high"))
        result = [] if low[0] is None else [(">=", _floor(*low))]
        if high[0] is None:
            return result
        if high[2] is None:
            return result + [("<", _next_up(*high[:3]))]
        return result + [("<=", Version(*high))]
    # allow ">= 1.2" by gluing operators to the following token
    tokens = re.sub(r"(\^|~|>=|<=|>|<|=)\s+", r"\1", text).split()
    comparators = []
    for token in tokens:
        match = _COMPARATOR_RE.match(token)
        if not match:
            raise InvalidRange(f"invalid comparator: {token!r}")
        op = match.group("op") or ""
        parts = _parse_partial(match.group("version"))
        if op == "^":
            comparators.extend(_caret(*parts))
        elif op == "~":
            comparators.extend(_tilde(*parts))
        else:
            comparators.extend(_primitive(op, *parts))
    return comparators


class Range:
    """A parsed range specifier; test versions with :meth:`satisfies`."""

    def __init__(self, spec):
        self.spec = spec
        try:
            self.sets = [_parse_set(part) for part in spec.split("||")]
        except InvalidVersion as exc:
            raise InvalidRange(str(exc)) from None

    def satisfies(self, version, include_prerelease=False):
        """Return True if *version* matches any comparator set.

        A prerelease only matches a set that mentions a prerelease of the
        same ``major.minor.patch``, unless *include_prerelease* is true.
        """
        v = Version.parse(version)
        return any(self._test_set(s, v, include_prerelease) for s in self.sets)

    @staticmethod
    def _test_set(comparators, v, include_prerelease):
        if not all(_OPS[op](v, bound) for op, bound in comparators):
            return False
        if not v.prerelease or include_prerelease:
            return True
        return any(
            bound.prerelease and bound.release() == v.release()
            for _, bound in comparators
        )

    def __str__(self):
        return " || ".join(
            " ".join(f"{op}{bound}" for op, bound in s) or "*" for s in self.sets
        )

    def __repr__(self):
        return f"Range({self.spec!r})"


def satisfies(version, spec, include_prerelease=False):
    """Return True if *version* is inside the range *spec*."""
    return Range(spec).satisfies(version, include_prerelease)
