"""Serialising configuration mappings back to text."""

INDENT = "    "


def format_value(value):
    """Return the text lines for *value*; extra lines are indented."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    first, *rest = str(value).split("\n")
    return first, [INDENT + line for line in rest]


def dump(sections):
    """Render ``{section: {key: value}}`` in the format read by the parser."""
    lines = []
    for name, values in sections.items():
        if lines:
            lines.append("")
        lines.append(f"[{name}]")
        for key, value in values.items():
            first, rest = format_value(value)
            lines.append(f"{key} = {first}".rstrip())
            lines.extend(rest)
    return "\n".join(lines) + "\n" if lines else ""
