"""Parsing, formatting and precedence of semantic versions (SemVer 2.0.0)."""

import re
from functools import total_ordering

_NUM = r"0|[1-9]\d*"
_IDENT = r"[0-9A-Za-z-]+"
_VERSION_RE = re.compile(
    rf"^v?(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?"
    rf"(?:\+(?P<build>{_IDENT}(?:\.{_IDENT})*))?$"
)


class InvalidVersion(ValueError):
    """Raised for text that is not a valid semantic version."""


def split_identifiers(text):
    """Split a dotted prerelease/build string into a tuple of identifiers."""
    return tuple(text.split(".")) if text else ()


def _identifier_key(ident):
    """Sort key for one prerelease identifier.

    Numeric identifiers compare numerically and always have lower
    precedence than alphanumeric ones, which compare in ASCII order.
    """
    if ident.isdigit():
        return (0, ident)
    return (1, ident)


@total_ordering
class Version:
    """An immutable semantic version ``MAJOR.MINOR.PATCH[-PRE][+BUILD]``.

    Equality and ordering follow SemVer precedence, so build metadata is
    ignored: ``1.0.0+a == 1.0.0+b``.
    """

    __slots__ = ("major", "minor", "patch", "prerelease", "build")

    def __init__(self, major, minor=0, patch=0, prerelease=(), build=()):
        if isinstance(prerelease, str):
            prerelease = split_identifiers(prerelease)
        if isinstance(build, str):
            build = split_identifiers(build)
        for number in (major, minor, patch):
            if not isinstance(number, int) or number < 0:
                raise InvalidVersion(f"version numbers must be non-negative ints: {number!r}")
        for ident in prerelease:
            if ident.isdigit() and len(ident) > 1 and ident.startswith("0"):
                raise InvalidVersion(f"numeric identifier with leading zero: {ident!r}")
        object.__setattr__(self, "major", major)
        object.__setattr__(self, "minor", minor)
        object.__setattr__(self, "patch", patch)
        object.__setattr__(self, "prerelease", tuple(prerelease))
        object.__setattr__(self, "build", tuple(build))

    def __setattr__(self, name, value):
        raise AttributeError("Version objects are immutable")

    @classmethod
    def parse(cls, text):
        """Parse *text* (an optional leading ``v`` is allowed)."""
        if isinstance(text, cls):
            return text
        match = _VERSION_RE.match(str(text).strip())
        if not match:
            raise InvalidVersion(f"invalid version: {text!r}")
        return cls(
            int(match.group("major")),
            int(match.group("minor")),
            int(match.group("patch")),
            split_identifiers(match.group("pre")),
            split_identifiers(match.group("build")),
        )

    @property
    def is_prerelease(self):
        return bool(self.prerelease)

    def release(self):
        """Return the version without prerelease and build parts."""
        return Version(self.major, self.minor, self.patch)

    def replace(self, **changes):
        """Return a copy with the given fields replaced."""
        fields = {name: getattr(self, name) for name in self.__slots__}
        fields.update(changes)
        return Version(**fields)

    def precedence_key(self):
        """Return a tuple whose ordering is SemVer precedence."""
        if self.prerelease:
            pre = (0,) + tuple(_identifier_key(i) for i in self.prerelease)
        else:
            pre = (1,)
        return (self.major, self.minor, self.patch, pre)

    def compare(self, other):
        """Return -1, 0 or 1 as *self* is lower, equal or higher than *other*."""
        a, b = self.precedence_key(), Version.parse(other).precedence_key()
        return (a > b) - (a < b)

    def __eq__(self, other):
        if not isinstance(other, Version):
            return NotImplemented
        return self.compare(other) == 0

    def __lt__(self, other):
        if not isinstance(other, Version):
            return NotImplemented
        return self.compare(other) < 0

    def __hash__(self):
        return hash(self.precedence_key())

    def __str__(self):
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text

    def __repr__(self):
        return f"Version({str(self)!r})"


def parse(text):
    """Shortcut for :meth:`Version.parse`."""
    return Version.parse(text)
