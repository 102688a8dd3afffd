"""tabular - a small CSV/table toolkit.

Typical use::

    from tabular import read_csv, render
    table = read_csv(text)
    print(render(table.sort_by("price", descending=True)))
"""

from tabular.dialect import Dialect, sniff, split_line
from tabular.reader import read_csv
from tabular.render import render
from tabular.table import Table
from tabular.types import infer_column_type, parse_value

__all__ = [
    "Dialect",
    "Table",
    "infer_column_type",
    "parse_value",
    "read_csv",
    "render",
    "sniff",
    "split_line",
]

__version__ = "0.3.1"
