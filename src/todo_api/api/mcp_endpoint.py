"""`/mcp`: the MCP Streamable HTTP endpoint, stateless, answering in JSON.

Before any MCP message is read, the request's Origin and Host are checked (DNS-rebinding
protection) and, with AUTH_MODE=jwt, its bearer token is verified by `todo_api.api.caller`,
exactly as for REST. The verified user rides on the request to the tools.
"""

from ipaddress import ip_address
from urllib.parse import urlsplit

from mcp.server.auth.routes import create_protected_resource_routes
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from pydantic import AnyHttpUrl, ValidationError
from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Receive, Scope, Send

from todo_api.api.caller import verified_subject
from todo_api.api.problems import ProblemError
from todo_api.settings import Settings

MCP_PATH = "/mcp"
_LOOPBACK_NAMES = frozenset({"localhost"})


class OriginRefusedError(ProblemError):
    def __init__(self) -> None:
        super().__init__(
            403,
            "Requests to /mcp from a web page must come from an origin listed in CORS_ORIGINS.",
            type_="urn:todo-api:origin-refused",
        )


class HostRefusedError(ProblemError):
    def __init__(self) -> None:
        super().__init__(
            421,
            "This server does not answer /mcp for that host name; use the one in "
            "PUBLIC_BASE_URL (or localhost).",
            type_="urn:todo-api:host-refused",
        )


def _is_loopback(hostname: str) -> bool:
    if hostname in _LOOPBACK_NAMES:
        return True
    try:
        return ip_address(hostname).is_loopback
    except ValueError:
        return False


class McpEndpoint:
    """The ASGI app behind the `/mcp` route."""

    def __init__(self, session_manager: StreamableHTTPSessionManager, settings: Settings) -> None:
        self.session_manager = session_manager
        public = urlsplit(settings.public_base_url) if settings.public_base_url else None
        # Browser pages that may call: those CORS_ORIGINS lets use the REST API, and the
        # service's own public origin.
        self.any_origin = "*" in settings.cors_origins
        self.origins = set(settings.cors_origins)
        if public is not None:
            self.origins.add(f"{public.scheme}://{public.netloc}".lower())
        # Host names a request may name: the public one, and loopback names. Without
        # PUBLIC_BASE_URL, a server listening on all interfaces cannot know its names.
        self.hostnames: frozenset[str] | None
        if public is not None and public.hostname:
            self.hostnames = frozenset({public.hostname.lower()})
        elif _is_loopback(settings.host):
            self.hostnames = frozenset()
        else:
            self.hostnames = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        origin = request.headers.get("origin")
        if origin is not None and not self.any_origin and origin.lower() not in self.origins:
            raise OriginRefusedError()
        hostname = (request.url.hostname or "").lower()
        if (
            self.hostnames is not None
            and hostname not in self.hostnames
            and not _is_loopback(hostname)
        ):
            raise HostRefusedError()
        subject = await verified_subject(request)
        if subject is not None:
            request.state.caller = subject
        await self.session_manager.handle_request(scope, receive, send)


class McpRoute(Route):
    """The `/mcp` route; it names itself in the scope, so the request log shows `/mcp`."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def protected_resource_routes(settings: Settings) -> list[BaseRoute]:
    """RFC 9728 metadata for `/mcp` (`/.well-known/oauth-protected-resource/mcp`), naming
    AUTH_ISSUER as the server that issues its tokens: MCP clients that sign users in find
    it there. Only with tokens, and only where both URLs are known."""
    if settings.auth_mode != "jwt" or not settings.public_base_url or not settings.auth_issuer:
        return []
    try:
        resource = AnyHttpUrl(f"{settings.public_base_url}{MCP_PATH}")
        issuer = AnyHttpUrl(settings.auth_issuer)
    except ValidationError:
        return []  # an issuer that is no URL (allowed for `iss`) names no server to find
    routes: list[BaseRoute] = list(
        create_protected_resource_routes(
            resource_url=resource, authorization_servers=[issuer], resource_name="Todo API"
        )
    )
    return routes
