"""Parsing of INI-like text into nested dictionaries.

The accepted syntax is deliberately small::

    # a comment
    ; also a comment
    [server]
    host = example.org      ; inline comments need whitespace before them
    port: 8080
    motd = first line
        second line          (indented lines continue the previous value)
"""

import re

from .errors import ParseError

COMMENT_PREFIXES = ("#", ";")
SEPARATORS = ("=", ":")

_SECTION_RE = re.compile(r"^\[(?P<name>[^\[\]]+)\]$")
_INLINE_COMMENT_RE = re.compile(r"\s+[#;].*$")


def parse(text):
    """Parse *text* and return ``{section: {key: raw_value}}``.

    Section names keep their case, keys are lower-cased.  A repeated section
    header extends the earlier section and a repeated key replaces the
    earlier value.  Values are returned raw, without interpolation.
    """
    sections = {}
    current = None
    last_key = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped:
            last_key = None
            continue
        if stripped.startswith(COMMENT_PREFIXES):
            continue
        if raw[0].isspace() and last_key is not None:
            current[last_key] += "\n" + strip_inline_comment(stripped)
            continue
        match = _SECTION_RE.match(stripped)
        if match:
            name = match.group("name").strip()
            if not name:
                raise ParseError("empty section name", lineno)
            current = sections.setdefault(name, {})
            last_key = None
            continue
        if current is None:
            raise ParseError(f"option outside of a section: {stripped!r}", lineno)
        key, value = split_option(stripped, lineno)
        current[key] = value
        last_key = key
    return sections


def split_option(line, lineno=None):
    """Split ``key = value`` (or ``key: value``) at the first separator."""
    positions = [line.find(sep) for sep in SEPARATORS if sep in line]
    if not positions:
        raise ParseError(f"expected 'key = value', got {line!r}", lineno)
    index = min(positions)
    key = line[:index].strip().lower()
    if not key:
        raise ParseError("missing option name", lineno)
    value = strip_inline_comment(line[index + 1:].strip())
    return key, value


def strip_inline_comment(value):
    """Remove a trailing ``# ...`` or ``; ...`` comment from *value*."""
    return _INLINE_COMMENT_RE.sub("", value)
