"""Dialect sniffing: delimiter, quote character and header detection."""

from dataclasses import dataclass

from tabular.types import infer_column_type

CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
QUOTE_CHARS = ('"', "'")


@dataclass(frozen=True)
class Dialect:
    """How a piece of delimited text is laid out."""

    delimiter: str = ","
    quotechar: str = '"'
    has_header: bool = True


def split_line(line, delimiter=",", quotechar='"'):
    """Split a single line into fields.

    Fields may be wrapped in *quotechar*; inside a quoted field the delimiter
    is literal and a doubled quote stands for one quote character.
    Raises ``ValueError`` for an unterminated quoted field.
    """
    fields = []
    buf = []
    in_quotes = False
    i = 0
    while i < len(line):
        ch = line[i]
        if in_quotes:
            if ch == quotechar:
                if line[i + 1:i + 2] == quotechar:
                    buf.append(quotechar)
                    i += 1
                else:
                    in_quotes = False
            else:
                buf.append(ch)
        elif ch == quotechar:
            in_quotes = True
        elif ch == delimiter:
            fields.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    if in_quotes:
        raise ValueError(f"unterminated quoted field in line: {line!r}")
    fields.append("".join(buf))
    return fields


def _count_outside_quotes(line, delimiter, quotechar):
    count = 0
    in_quotes = False
    for ch in line:
        if ch == quotechar:
            in_quotes = not in_quotes
        elif ch == delimiter and not in_quotes:
            count += 1
    return count


def sniff_quotechar(lines):
    """Return the quote character used in *lines* (``'"'`` if none is)."""
    text = "\n".join(lines)
    counts = {q: text.count(q) for q in QUOTE_CHARS}
    if counts["'"] > counts['"'] and counts["'"] % 2 == 0:
        return "'"
    return '"'


def sniff_delimiter(lines, quotechar='"', candidates=CANDIDATE_DELIMITERS):
    """Pick the candidate that splits the most lines into the same field count.

    Ties are broken by the number of fields, then by candidate order.
    Falls back to ``","`` if no candidate occurs on every line.
    """
    best, best_score = ",", (0, 0)
    for delimiter in candidates:
        counts = [_count_outside_quotes(line, delimiter, quotechar) for line in lines]
        if not counts or min(counts) == 0:
            continue
        consistent = sum(1 for c in counts if c == counts[0])
        score = (consistent, counts[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def detect_header(rows):
    """Guess whether the first of *rows* (lists of fields) is a header.

    The first row is a header when none of its cells is missing and at least
    one column is typed (not ``"str"``) in the body while its first cell is
    not of that type.  With no typed column, a header is assumed.
    """
    if len(rows) < 2:
        return True
    first, body = rows[0], rows[1:]
    if any(not cell.strip() for cell in first):
        return False
    typed_columns = 0
    for index, cell in enumerate(first):
        column = [row[index] for row in body if index < len(row)]
        kind = infer_column_type(column)
        if kind == "str":
            continue
        typed_columns += 1
        if infer_column_type(column + [cell]) != kind:
            return True
    return typed_columns == 0


def sniff(text, sample_lines=20):
    """Detect the :class:`Dialect` of *text* from its first lines."""
    lines = [line for line in text.splitlines() if line.strip()][:sample_lines]
    if not lines:
        return Dialect()
    quotechar = sniff_quotechar(lines)
    delimiter = sniff_delimiter(lines, quotechar)
    rows = [split_line(line, delimiter, quotechar) for line in lines]
    return Dialect(delimiter, quotechar, detect_header(rows))
