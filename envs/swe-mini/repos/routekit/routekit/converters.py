"""Converters turn URL segments into Python values and back."""

import re
from urllib.parse import quote, unquote


class Converter:
    """Base converter: one non-empty path segment, kept as a string."""

    name = "string"
    regex = r"[^/]+"

    def to_python(self, value):
        """Convert the matched (still percent-encoded) text to a value.

        Raise ``ValueError`` to reject the match.
        """
        return unquote(value)

    def to_url(self, value):
        """Convert a value to URL text, percent-encoding as needed."""
        return quote(str(value), safe="")


class StringConverter(Converter):
    """The default converter (``<name>`` or ``<string:name>``)."""


class IntConverter(Converter):
    """Non-negative integers written without a sign (``<int:id>``)."""

    name = "int"
    regex = r"\d+"

    def to_python(self, value):
        return int(value)

    def to_url(self, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"int converter needs a non-negative int, got {value!r}")
        return str(value)


class FloatConverter(Converter):
    """Non-negative decimals with a fractional part (``<float:x>``)."""

    name = "float"
    regex = r"\d+\.\d+"

    def to_python(self, value):
        return float(value)

    def to_url(self, value):
        value = float(value)
        if value < 0:
            raise ValueError(f"float converter needs a non-negative number, got {value!r}")
        text = repr(value)
        if "e" in text:
            raise ValueError(f"cannot write {value!r} without an exponent")
        return text


class SlugConverter(Converter):
    """Lower-case words joined by single hyphens (``<slug:title>``)."""

    name = "slug"
    regex = r"[a-z0-9]+(?:-[a-z0-9]+)*"

    def to_url(self, value):
        if not re.fullmatch(self.regex, str(value)):
            raise ValueError(f"not a slug: {value!r}")
        return str(value)


class PathConverter(Converter):
    """The rest of the path, slashes included (``<path:rest>``)."""

    name = "path"
    regex = r"[^/].*?"

    def to_url(self, value):
        return quote(str(value), safe="/")


DEFAULT_CONVERTERS = {
    cls.name: cls
    for cls in (StringConverter, IntConverter, FloatConverter, SlugConverter, PathConverter)
}
