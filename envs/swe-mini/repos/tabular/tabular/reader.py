"""Reading delimited text into a :class:`~tabular.table.Table`."""

from tabular.dialect import sniff, split_line
from tabular.table import Table
from tabular.types import convert_column, infer_column_type


def read_rows(text, dialect):
    """Split *text* into lists of raw string fields (blank lines are skipped)."""
    return [
        split_line(line, dialect.delimiter, dialect.quotechar)
        for line in text.splitlines()
        if line.strip()
    ]


def read_csv(text, dialect=None, infer_types=True):
    """Parse delimited *text* into a :class:`Table`.

    The dialect is sniffed unless given.  Without a header row, columns are
    named ``col1``, ``col2``, ...  Short rows are padded with missing values;
    rows with too many fields raise ``ValueError``.  With *infer_types* each
    column is converted to its inferred type, otherwise values stay strings.
    """
    dialect = dialect or sniff(text)
    rows = read_rows(text, dialect)
    if not rows:
        return Table([], [])
    if dialect.has_header:
        columns = [name.strip() for name in rows[0]]
        body = rows[1:]
    else:
        columns = [f"col{i}" for i in range(1, len(rows[0]) + 1)]
        body = rows
    width = len(columns)
    for number, row in enumerate(body, 1):
        if len(row) > width:
            raise ValueError(f"data row {number} has {len(row)} fields, expected {width}")
        row.extend([""] * (width - len(row)))
    if not infer_types:
        return Table(columns, body)
    types = {}
    converted = []
    for index, name in enumerate(columns):
        raw = [row[index] for row in body]
        kind = infer_column_type(raw)
        types[name] = kind
        converted.append(convert_column(raw, kind))
    return Table(columns, [list(values) for values in zip(*converted)], types)
