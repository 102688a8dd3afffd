"""The :class:`Table` container: an ordered list of columns and typed rows."""

from tabular.aggregate import RESULT_TYPES, get_aggregate


class Table:
    """A rectangular table of Python values.

    ``columns`` is a list of column names, ``rows`` a list of lists (one value
    per column) and ``types`` maps column names to type names as produced by
    :func:`tabular.types.infer_column_type`.  Tables are treated as immutable:
    every operation returns a new table.
    """

    def __init__(self, columns, rows, types=None):
        self.columns = list(columns)
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"duplicate column names: {self.columns}")
        self.rows = [list(row) for row in rows]
        for number, row in enumerate(self.rows, 1):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"row {number} has {len(row)} values, expected {len(self.columns)}"
                )
        self.types = dict(types or {})
        for name in self.columns:
            self.types.setdefault(name, "str")

    def __len__(self):
        return len(self.rows)

    def __repr__(self):
        return f"Table(columns={self.columns!r}, rows={len(self.rows)})"

    def index(self, name):
        """Position of column *name* (``KeyError`` if there is none)."""
        try:
            return self.columns.index(name)
        except ValueError:
            raise KeyError(name) from None

    def column(self, name):
        """List of the values of column *name*."""
        i = self.index(name)
        return [row[i] for row in self.rows]

    def records(self):
        """The rows as a list of ``{column: value}`` dicts."""
        return [dict(zip(self.columns, row)) for row in self.rows]

    def _derive(self, rows, columns=None):
        columns = self.columns if columns is None else columns
        types = {name: self.types[name] for name in columns}
        return Table(columns, rows, types)

    def select(self, *names):
        """A table with only the given columns, in the given order."""
        indexes = [self.index(name) for name in names]
        return self._derive([[row[i] for i in indexes] for row in self.rows], list(names))

    def filter(self, predicate=None, **equals):
        """Rows for which ``predicate(record)`` is true and ``record[k] == v``
        for every keyword argument."""
        for name in equals:
            self.index(name)
        kept = []
        for row, record in zip(self.rows, self.records()):
            if any(record[name] != value for name, value in equals.items()):
                continue
            if predicate is not None and not predicate(record):
                continue
            kept.append(row)
        return self._derive(kept)

    def sort_by(self, keys, descending=False):
        """Sort by one or more columns.

        *keys* is a column name or a list of names (most significant first);
        *descending* is a bool or a list of bools, one per key.  The sort is
        stable, and ``None`` values always go last whatever the direction.
        """
        keys = [keys] if isinstance(keys, str) else list(keys)
        if isinstance(descending, bool):
            descending = [descending] * len(keys)
        if len(descending) != len(keys):
            raise ValueError("descending must have one entry per sort key")
        rows = list(self.rows)
        for name, desc in reversed(list(zip(keys, descending))):
            i = self.index(name)
            rows.sort(key=lambda row: (row[i] is None, row[i] if row[i] is not None else 0),
                      reverse=desc)
        return self._derive(rows)

    def group_by(self, key, **aggregations):
        """Group rows by column *key* and aggregate other columns.

        Each keyword is ``output_name=(column, aggregate)``, e.g.
        ``total=("amount", "sum")``.  Groups appear in order of first
        occurrence; missing values are skipped by every aggregate.
        """
        key_index = self.index(key)
        specs = []
        for output, (column, agg_name) in aggregations.items():
            specs.append((output, self.index(column), column, agg_name, get_aggregate(agg_name)))
        groups = {}
        for row in self.rows:
            groups.setdefault(row[key_index], []).append(row)
        rows = []
        for value, members in groups.items():
            out = [value]
            for _output, index, _column, _agg_name, func in specs:
                out.append(func([m[index] for m in members if m[index] is not None]))
            rows.append(out)
        columns = [key] + [spec[0] for spec in specs]
        types = {key: self.types[key]}
        for output, _index, column, agg_name, _func in specs:
            types[output] = RESULT_TYPES[agg_name](self.types[column])
        return Table(columns, rows, types)
