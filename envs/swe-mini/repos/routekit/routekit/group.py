"""Route groups: register several routes under a common prefix."""

from routekit.urls import join_paths


class RouteGroup:
    """Adds routes to a router under a path *prefix*.

    With an *endpoint_prefix*, endpoint names are namespaced as
    ``"<endpoint_prefix>.<endpoint>"``.  Groups can be nested.
    """

    def __init__(self, router, prefix, endpoint_prefix=None):
        if prefix and not prefix.startswith("/"):
            raise ValueError(f"group prefix must start with '/': {prefix!r}")
        self.router = router
        self.prefix = prefix.rstrip("/")
        self.endpoint_prefix = endpoint_prefix

    def _endpoint(self, endpoint, handler):
        if endpoint is None and handler is not None:
            endpoint = handler.__name__
        if endpoint is None or not self.endpoint_prefix:
            return endpoint
        return f"{self.endpoint_prefix}.{endpoint}"

    def add(self, pattern, handler=None, *, methods=("GET",), endpoint=None):
        """Register *pattern* (relative to the prefix) on the router."""
        return self.router.add(
            join_paths(self.prefix, pattern),
            handler,
            methods=methods,
            endpoint=self._endpoint(endpoint, handler),
        )

    def route(self, pattern, *, methods=("GET",), endpoint=None):
        """Decorator form of :meth:`add`."""
        def decorator(handler):
            self.add(pattern, handler, methods=methods, endpoint=endpoint)
            return handler
        return decorator

    def group(self, prefix, endpoint_prefix=None):
        """A nested group; endpoint prefixes are joined with dots."""
        if self.endpoint_prefix and endpoint_prefix:
            endpoint_prefix = f"{self.endpoint_prefix}.{endpoint_prefix}"
        else:
            endpoint_prefix = endpoint_prefix or self.endpoint_prefix
        return RouteGroup(self.router, join_paths(self.prefix, prefix), endpoint_prefix)
