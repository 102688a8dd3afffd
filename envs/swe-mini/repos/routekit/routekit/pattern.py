"""Parsing and compiling route patterns such as ``/users/<int:id>``."""

import re

from routekit.converters import DEFAULT_CONVERTERS
from routekit.errors import BuildError

_VARIABLE = re.compile(r"<(?:(?P<converter>[A-Za-z_]\w*):)?(?P<name>[A-Za-z_]\w*)>")


def parse_pattern(pattern):
    """Split *pattern* into ``("literal", text)`` and ``("var", converter, name)`` parts."""
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern must start with '/': {pattern!r}")
    parts = []
    position = 0
    for found in _VARIABLE.finditer(pattern):
        if found.start() > position:
            parts.append(("literal", pattern[position:found.start()]))
        parts.append(("var", found.group("converter") or "string", found.group("name")))
        position = found.end()
    if position < len(pattern):
        parts.append(("literal", pattern[position:]))
    for part in parts:
        if part[0] == "literal" and ("<" in part[1] or ">" in part[1]):
            raise ValueError(f"malformed variable in route pattern {pattern!r}")
    return parts


class RoutePattern:
    """A compiled route pattern.

    >>> RoutePattern("/users/<int:id>").match("/users/7")
    {'id': 7}
    """

    def __init__(self, pattern, converters=None):
        self.pattern = pattern
        available = dict(DEFAULT_CONVERTERS)
        available.update(converters or {})
        self.parts = parse_pattern(pattern)
        self.converters = {}
        regex = []
        for part in self.parts:
            if part[0] == "literal":
                regex.append(re.escape(part[1]))
                continue
            _, converter_name, name = part
            if name in self.converters:
                raise ValueError(f"variable {name!r} used twice in {pattern!r}")
            try:
                converter = available[converter_name]()
            except KeyError:
                raise ValueError(f"unknown converter {converter_name!r} in {pattern!r}") from None
            self.converters[name] = converter
            regex.append(f"(?P<{name}>{converter.regex})")
        self.regex = re.compile("".join(regex))

    @property
    def variables(self):
        """Names of the variables, in pattern order."""
        return list(self.converters)

    @property
    def is_static(self):
        """True when the pattern has no variables."""
        return not self.converters

    def match(self, path):
        """Return the converted variables if *path* matches, else ``None``."""
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        params = {}
        for name, converter in self.converters.items():
            try:
                params[name] = converter.to_python(found.group(name))
            except ValueError:
                return None
        return params

    def build(self, values):
        """Build the path for *values* (a mapping with every variable)."""
        out = []
        for part in self.parts:
            if part[0] == "literal":
                out.append(part[1])
                continue
            name = part[2]
            if name not in values or values[name] is None:
                raise BuildError(f"missing value for {name!r} in {self.pattern!r}")
            try:
                out.append(self.converters[name].to_url(values[name]))
            except ValueError as exc:
                raise BuildError(f"bad value for {name!r}: {exc}") from None
        return "".join(out)

    def __repr__(self):
        return f"RoutePattern({self.pattern!r})"
