"""Rendering tables as aligned plain text or markdown."""

from datetime import date

NUMERIC_TYPES = ("int", "float")
ALIGNMENTS = ("left", "right", "center")
ELLIPSIS = "\u2026"


def format_value(value, none=""):
    """Text for one cell value."""
    if value is None:
        return none
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def truncate(text, max_width):
    """Shorten *text* to at most *max_width* characters, marking the cut."""
    if max_width is None or len(text) <= max_width:
        return text
    if max_width <= 1:
        return text[:max_width]
    return text[:max_width - 1] + ELLIPSIS


def column_alignments(table, align=None):
    """Alignment of every column: numbers right, everything else left,
    unless overridden by the *align* mapping."""
    align = align or {}
    result = []
    for name in table.columns:
        how = align.get(name)
        if how is None:
            how = "right" if table.types.get(name) in NUMERIC_TYPES else "left"
        if how not in ALIGNMENTS:
            raise ValueError(f"bad alignment {how!r} for column {name!r}")
        result.append(how)
    return result


def pad(text, width, how):
    """Pad *text* to *width* according to the alignment *how*."""
    if how == "right":
        return text.rjust(width)
    if how == "center":
        return text.center(width)
    return text.ljust(width)


def _cell_grid(table, none, max_width):
    header = [truncate(str(name), max_width) for name in table.columns]
    body = [[truncate(format_value(v, none), max_width) for v in row] for row in table.rows]
    return header, body


def _widths(header, body, minimum=1):
    widths = [max(minimum, len(cell)) for cell in header]
    for row in body:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row)]
    return widths


def render_plain(table, align=None, none="", max_width=None):
    """Columns separated by two spaces, header underlined with dashes."""
    aligns = column_alignments(table, align)
    header, body = _cell_grid(table, none, max_width)
    widths = _widths(header, body)
    lines = ["  ".join(pad(c, w, a) for c, w, a in zip(header, widths, aligns))]
    lines.append("  ".join("-" * w for w in widths))
    for row in body:
        lines.append("  ".join(pad(c, w, a) for c, w, a in zip(row, widths, aligns)))
    return "\n".join(line.rstrip() for line in lines)


def _rule(width, how):
    if how == "right":
        return "-" * (width - 1) + ":"
    if how == "center":
        return ":" + "-" * (width - 2) + ":"
    return "-" * width


def render_markdown(table, align=None, none="", max_width=None):
    """A GitHub-flavoured markdown table with an alignment row."""
    aligns = column_alignments(table, align)
    header, body = _cell_grid(table, none, max_width)
    widths = _widths(header, body, minimum=3)

    def line(cells):
        return "| " + " | ".join(pad(c, w, a) for c, w, a in zip(cells, widths, aligns)) + " |"

    lines = [line(header), "| " + " | ".join(_rule(w, a) for w, a in zip(widths, aligns)) + " |"]
    lines.extend(line(row) for row in body)
    return "\n".join(lines)


RENDERERS = {"plain": render_plain, "markdown": render_markdown}


def render(table, fmt="plain", align=None, none="", max_width=None):
    """Render *table* in format *fmt* (``"plain"`` or ``"markdown"``).

    *align* maps column names to ``"left"``, ``"right"`` or ``"center"``;
    *none* is the text shown for missing values; *max_width* truncates
    long cells (including headers).
    """
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}") from None
    return renderer(table, align=align, none=none, max_width=max_width)
