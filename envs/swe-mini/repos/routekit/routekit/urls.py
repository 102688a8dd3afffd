"""Helpers for assembling URLs: query strings and path joining."""

from urllib.parse import urlencode


def encode_query(params):
    """Encode a mapping as a query string (without the leading ``?``).

    Keys keep their insertion order, ``None`` values are dropped and
    booleans are written as ``true`` / ``false``.
    """
    items = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        items.append((key, value))
    return urlencode(items)


def add_query(path, params):
    """Append the encoded *params* to *path* (nothing if there are none)."""
    query = encode_query(params)
    if not query:
        return path
    separator = "&" if "?" in path else "?"
    return f"{path}{separator}{query}"


def join_paths(prefix, path):
    """Join a group *prefix* and a route *path*, avoiding doubled slashes.

    ``join_paths("/api/", "/users")`` is ``"/api/users"``; an empty or ``"/"``
    prefix leaves *path* unchanged.
    """
    prefix = prefix.rstrip("/")
    if not path.startswith("/"):
        path = "/" + path
    return prefix + path


def toggle_trailing_slash(path):
    """``/a`` becomes ``/a/`` and ``/a/`` becomes ``/a``; ``/`` stays ``/``."""
    if path == "/":
        return path
    if path.endswith("/"):
        return path[:-1]
    return path + "/"
