"""Expansion of ``${key}`` and ``${section:key}`` references."""

import re

from .errors import InterpolationError

MAX_DEPTH = 10

# ``$$`` is an escaped dollar sign, ``${...}`` is a reference.
_TOKEN_RE = re.compile(r"\$(\$|\{([^{}]*)\})")


def split_reference(ref, section):
    """Return ``(section, key)`` for the reference text *ref*.

    A bare ``key`` refers to *section*, the section holding the value.
    """
    if ":" in ref:
        ref_section, key = ref.split(":", 1)
        return ref_section.strip(), key.strip().lower()
    return section, ref.strip().lower()


def interpolate(sections, section, value, depth=0):
    """Expand every reference in *value*, which lives in *section*.

    *sections* is the raw ``{section: {key: value}}`` mapping.  References
    are expanded recursively; a chain deeper than :data:`MAX_DEPTH` is
    reported as a probable cycle.
    """
    if depth > MAX_DEPTH:
        raise InterpolationError(
            f"interpolation deeper than {MAX_DEPTH} levels in [{section}] "
            f"(reference cycle?)"
        )

    def replace(match):
        if match.group(1) == "$":
            return "$"
        ref = match.group(2)
        ref_section, key = split_reference(ref, section)
        try:
            raw = sections[ref_section][key]
        except KeyError:
            raise InterpolationError(
                f"cannot resolve ${{{ref}}} in [{section}]"
            ) from None
        return interpolate(sections, section, raw, depth + 1)

    return _TOKEN_RE.sub(replace, value)
