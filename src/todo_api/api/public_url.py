"""Absolute URLs of this service as its clients reach it, for `Location` and `Link`."""

from collections.abc import Iterable, Mapping
from typing import Any
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


def page_headers(
    request: Request, route: str, offset: int, limit: int, total: int
) -> dict[str, str]:
    """`X-Total-Count` and, unless it is the only page, the RFC 8288 `Link` to the
    `rel="next"` and `rel="prev"` pages of the list the route named `route` answered,
    keeping the other query parameters."""
    pages = []
    if offset + limit < total:
        pages.append(("next", offset + limit))
    if offset > 0:
        pages.append(("prev", max(min(offset, total) - limit, 0)))
    links = []
    for rel, page_offset in pages:
        query = request.url.include_query_params(offset=page_offset, limit=limit).query
        links.append(f'<{public_url(request, route, query, **request.path_params)}>; rel="{rel}"')
    headers = {"X-Total-Count": str(total)}
    if links:
        headers["Link"] = ", ".join(links)
    return headers


def page_headers_schema(counted: str) -> dict[str, Any]:
    """The OpenAPI description of `page_headers`; `counted` says what X-Total-Count counts."""
    return {
        "X-Total-Count": {
            "description": f"How many {counted}, over all pages.",
            "schema": {"type": "integer", "format": "int64", "minimum": 0},
        },
        "Link": {
            "description": 'RFC 8288 links to the `rel="next"` and `rel="prev"` pages.',
            "schema": {"type": "string"},
        },
    }


def route_paths(routes: Iterable[BaseRoute]) -> dict[str, str]:
    """Each named route's path with `{name}` for its parameters, for `public_url`: made once
    at start-up, as looking a route up among all of them took a tenth of a create's CPU."""
    return {route.name: route.path_format for route in routes if isinstance(route, Route)}
