"""Absolute URLs of this service as its clients reach it, for `Location` and `Link`."""

from collections.abc import Iterable, Mapping
from urllib.parse import quote

from starlette.requests import Request
from starlette.routing import BaseRoute, Route

#: Besides letters, digits and `-._~`, what RFC 3986 §3.3 lets a path segment hold as it is
#: and a user id may contain; anything else in a segment (`|`) is percent-encoded.
_SEGMENT_SAFE = ":@"


def public_url(request: Request, route: str, query: str = "", **params: str) -> str:
    """The URL of the route named `route` with these path parameters, percent-encoded, under
    PUBLIC_BASE_URL or else the request's own base.

    Without PUBLIC_BASE_URL the base is the request's scheme and Host (a trusted proxy's
    X-Forwarded-Proto and -Host), which a client picks freely: production sets the setting.
    """
    encoded = {name: quote(value, safe=_SEGMENT_SAFE) for name, value in params.items()}
    paths: Mapping[str, str] = request.app.state.route_paths
    path = paths[route].format(**encoded)
    base = request.app.state.settings.public_base_url or str(request.base_url).rstrip("/")
    return f"{base}{path}?{query}" if query else f"{base}{path}"


def route_paths(routes: Iterable[BaseRoute]) -> dict[str, str]:
    """Each named route's path with `{name}` for its parameters, for `public_url`: made once
    at start-up, as looking a route up among all of them took a tenth of a create's CPU."""
    return {route.name: route.path_format for route in routes if isinstance(route, Route)}
