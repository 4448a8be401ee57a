"""Absolute URLs of this service as its clients reach it, for `Location` and `Link`."""

from starlette.requests import Request


def public_url(request: Request, path: str, query: str = "") -> str:
    """`path`, as routed inside the app, under PUBLIC_BASE_URL or else the request's own base.

    Without PUBLIC_BASE_URL the base is the request's scheme and Host (a trusted proxy's
    X-Forwarded-Proto and -Host), which a client picks freely: production sets the setting.
    """
    base = request.app.state.settings.public_base_url or str(request.base_url).rstrip("/")
    return f"{base}{path}?{query}" if query else f"{base}{path}"
