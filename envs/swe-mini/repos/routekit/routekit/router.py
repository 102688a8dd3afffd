"""The :class:`Router`: registration, matching and reverse URL building."""

from dataclasses import dataclass, field

from routekit.errors import BuildError, MethodNotAllowed, NotFound, RedirectRequired
from routekit.pattern import RoutePattern
from routekit.urls import add_query, toggle_trailing_slash

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass
class Route:
    """One registered route."""

    pattern: RoutePattern
    endpoint: str
    handler: object = None
    methods: frozenset = field(default_factory=lambda: frozenset({"GET"}))

    def allows(self, method):
        """True if *method* is accepted (``HEAD`` is implied by ``GET``)."""
        return method in self.methods or (method == "HEAD" and "GET" in self.methods)


@dataclass
class Match:
    """The result of a successful :meth:`Router.match`."""

    route: Route
    params: dict

    @property
    def endpoint(self):
        return self.route.endpoint

    @property
    def handler(self):
        return self.route.handler


def _normalize_methods(methods):
    normalized = frozenset(m.upper() for m in methods)
    unknown = normalized - HTTP_METHODS
    if not normalized or unknown:
        raise ValueError(f"bad HTTP methods: {sorted(unknown) or 'none given'}")
    return normalized


class Router:
    """An ordered collection of routes; the first matching route wins.

    With *redirect_slashes* (the default), a path that only matches when a
    trailing slash is added or removed raises :class:`RedirectRequired`.
    """

    def __init__(self, converters=None, redirect_slashes=True):
        self.converters = dict(converters or {})
        self.redirect_slashes = redirect_slashes
        self.routes = []
        self._by_endpoint = {}

    def add(self, pattern, handler=None, *, methods=("GET",), endpoint=None):
        """Register *pattern* and return the new :class:`Route`.

        The endpoint defaults to the handler's ``__name__``; endpoints must be
        unique because :meth:`url_for` looks routes up by endpoint.
        """
        if endpoint is None:
            if handler is None:
                raise ValueError("an endpoint name is needed when no handler is given")
            endpoint = handler.__name__
        if endpoint in self._by_endpoint:
            raise ValueError(f"duplicate endpoint {endpoint!r}")
        route = Route(RoutePattern(pattern, self.converters), endpoint, handler,
                      _normalize_methods(methods))
        self.routes.append(route)
        self._by_endpoint[endpoint] = route
        return route

    def route(self, pattern, *, methods=("GET",), endpoint=None):
        """Decorator form of :meth:`add`."""
        def decorator(handler):
            self.add(pattern, handler, methods=methods, endpoint=endpoint)
            return handler
        return decorator

    def group(self, prefix, endpoint_prefix=None):
        """A :class:`~routekit.group.RouteGroup` adding routes under *prefix*."""
        from routekit.group import RouteGroup

        return RouteGroup(self, prefix, endpoint_prefix)

    def _matching(self, path):
        for route in self.routes:
            params = route.pattern.match(path)
            if params is not None:
                yield route, params

    def match(self, path, method="GET"):
        """Find the route for *path* and *method*.

        Returns a :class:`Match`, or raises :class:`MethodNotAllowed` (the path
        is known but not for *method*; ``allowed`` lists every method accepted
        for the path), :class:`RedirectRequired` or :class:`NotFound`.
        """
        method = method.upper()
        allowed = set()
        for route, params in self._matching(path):
            if route.allows(method):
                return Match(route, params)
            allowed = set(route.methods)
        if allowed:
            if "GET" in allowed:
                allowed.add("HEAD")
            raise MethodNotAllowed(path, method, sorted(allowed))
        if self.redirect_slashes:
            alternative = toggle_trailing_slash(path)
            if alternative != path and any(True for _ in self._matching(alternative)):
                raise RedirectRequired(alternative)
        raise NotFound(path)

    def url_for(self, endpoint, **values):
        """Build the URL of *endpoint*.

        Keyword arguments naming route variables fill the path; all others
        become the query string.
        """
        try:
            route = self._by_endpoint[endpoint]
        except KeyError:
            raise BuildError(f"unknown endpoint {endpoint!r}") from None
        variables = set(route.pattern.variables)
        path = route.pattern.build({k: v for k, v in values.items() if k in variables})
        query = {k: v for k, v in values.items() if k not in variables}
        return add_query(path, query)
