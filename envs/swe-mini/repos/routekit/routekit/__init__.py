"""routekit - URL routing for a tiny web framework."""

from routekit.converters import DEFAULT_CONVERTERS, Converter
from routekit.errors import (
    BuildError,
    MethodNotAllowed,
    NotFound,
    RedirectRequired,
    RoutingError,
)
from routekit.group import RouteGroup
from routekit.pattern import RoutePattern
from routekit.router import Match, Route, Router

__all__ = [
    "DEFAULT_CONVERTERS",
    "BuildError",
    "Converter",
    "Match",
    "MethodNotAllowed",
    "NotFound",
    "RedirectRequired",
    "Route",
    "RouteGroup",
    "RoutePattern",
    "Router",
    "RoutingError",
]

__version__ = "0.2.0"
