"""Exceptions raised while matching and building URLs."""


class RoutingError(Exception):
    """Base class of all routing errors."""

    status = 500


class NotFound(RoutingError):
    """No route matches the path (HTTP 404)."""

    status = 404

    def __init__(self, path):
        super().__init__(f"no route matches {path!r}")
        self.path = path


class MethodNotAllowed(RoutingError):
    """A route matches the path, but not for this method (HTTP 405).

    ``allowed`` is the sorted list of methods that would have matched.
    """

    status = 405

    def __init__(self, path, method, allowed):
        super().__init__(f"{method} not allowed for {path!r} (allowed: {', '.join(allowed)})")
        self.path = path
        self.method = method
        self.allowed = list(allowed)


class RedirectRequired(RoutingError):
    """The path matches only with/without a trailing slash (HTTP 308)."""

    status = 308

    def __init__(self, location):
        super().__init__(f"redirect to {location!r}")
        self.location = location


class BuildError(RoutingError, LookupError):
    """A URL cannot be built (unknown endpoint, missing or bad value)."""
