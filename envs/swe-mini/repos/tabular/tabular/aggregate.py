"""Aggregation functions used by :meth:`tabular.table.Table.group_by`.

Every function receives the list of values of one column within one group,
with missing values (``None``) already removed.
"""


def agg_sum(values):
    """Sum of the values; ``0`` for an empty group."""
    return sum(values, 0)


def agg_mean(values):
    """Arithmetic mean; ``None`` for an empty group."""
    if not values:
        return None
    return sum(values) / len(values)


def agg_min(values):
    """Smallest value; ``None`` for an empty group."""
    return min(values) if values else None


def agg_max(values):
    """Largest value; ``None`` for an empty group."""
    return max(values) if values else None


def agg_count(values):
    """Number of non-missing values."""
    return len(values)


AGGREGATES = {
    "sum": agg_sum,
    "mean": agg_mean,
    "min": agg_min,
    "max": agg_max,
    "count": agg_count,
}

#: Result type of each aggregate, given the input column type.
RESULT_TYPES = {
    "sum": lambda kind: kind if kind in ("int", "float") else "float",
    "mean": lambda kind: "float",
    "min": lambda kind: kind,
    "max": lambda kind: kind,
    "count": lambda kind: "int",
}


def get_aggregate(name):
    """Look up an aggregate function by name (``ValueError`` if unknown)."""
    try:
        return AGGREGATES[name]
    except KeyError:
        known = ", ".join(sorted(AGGREGATES))
        raise ValueError(f"unknown aggregate {name!r} (expected one of: {known})") from None
