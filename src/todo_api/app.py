"""The application factory."""

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import httpx
from fastapi import FastAPI
from mcp.server.transport_security import TransportSecuritySettings

from todo_api import __version__
from todo_api.api.caller import SUBJECT
from todo_api.api.docs import install_docs
from todo_api.api.mcp_endpoint import (
    MCP_PATH,
    McpEndpoint,
    McpRoute,
    protected_resource_routes,
)
from todo_api.api.mcp_tools import build_mcp_server
from todo_api.api.middleware.body_limit import BodySizeLimitMiddleware
from todo_api.api.middleware.cors import CorsOffMiddleware, ProblemCORSMiddleware
from todo_api.api.middleware.forwarded import ForwardedHeadersMiddleware, trusted_proxies
from todo_api.api.middleware.head import HeadAsGetMiddleware
from todo_api.api.middleware.request_limits import RequestHeadLimitMiddleware
from todo_api.api.middleware.request_log import RequestLogMiddleware
from todo_api.api.middleware.response_headers import SecurityHeadersMiddleware
from todo_api.api.middleware.unexpected_errors import UnexpectedErrorMiddleware
from todo_api.api.openapi import build_openapi
from todo_api.api.problems import install_problem_handlers
from todo_api.api.public_url import route_paths
from todo_api.api.routes import health, index, reminders, tags, tasks
from todo_api.auth.tokens import TokenVerifier
from todo_api.db import idempotency
from todo_api.db import tags as tag_rows
from todo_api.db import tasks as task_queries
from todo_api.db.database import DatabaseAvailability
from todo_api.db.setup import create_database, create_readiness_database
from todo_api.settings import Settings, get_settings

# Headers a browser frontend must be allowed to read on cross-origin responses.
EXPOSED_HEADERS = [
    "Location",
    "Link",
    "X-Total-Count",
    "Retry-After",
    "X-Request-ID",
    "ETag",
    "Idempotent-Replayed",
    "WWW-Authenticate",
    "Mcp-Session-Id",
]
# Request headers beyond the CORS-safelisted ones that a frontend sends.
ALLOWED_HEADERS = [
    "Content-Type",
    "Authorization",
    "X-Request-ID",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    "Mcp-Session-Id",
    "Mcp-Protocol-Version",
]


logger = logging.getLogger(__name__)

#: Allocations before a young collection, and how many of each generation before the next.
GC_THRESHOLDS = (20_000, 20, 50)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # Parsed now, not when the first request builds the middleware: a bad value stops start-up.
    proxies = trusted_proxies(settings.forwarded_allow_ips)
    availability = DatabaseAvailability()
    database = create_database(settings, availability)
    database.precompile(task_queries.statement_shapes())
    database.precompile(tag_rows.statement_shapes())
    database.precompile(idempotency.statement_shapes(database.dialect.name))
    readiness_database = create_readiness_database(settings, availability)
    # Fetches the JWKS; redirects are not followed, so the key set comes from the URL given.
    key_client = httpx.AsyncClient(follow_redirects=False) if settings.auth_mode == "jwt" else None
    verifier = None if key_client is None else TokenVerifier(settings, key_client, SUBJECT)
    mcp_server = build_mcp_server(database, signed_in=verifier is not None)
    # Stateless and JSON: any instance answers any call, no session affinity. Host and
    # Origin are checked by McpEndpoint, consistently with the rest of the settings.
    mcp_server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    mcp_sessions = mcp_server.session_manager

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if verifier is None:
            logger.warning(
                "AUTH_MODE=none: the user id in the path is the caller, so anyone who can "
                "reach this API can act as any user. Set AUTH_MODE=jwt outside development."
            )
        # What start-up made lives as long as the process. Frozen, the collector's full
        # passes no longer scan it, and the pause they put into requests stays short. At
        # the default thresholds (700, 10, 10) collections cost a quarter of a read's CPU
        # (430 -> 330 µs per read, p99 48 -> 33 ms at 64 connections, in docs/benchmarks.md).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        # Expired idempotency keys go in the background, never on a request's path.
        janitor = asyncio.create_task(
            idempotency.clean_up_expired_keys(database, settings.idempotency_cleanup_seconds)
        )
        try:
            async with mcp_sessions.run():
                yield
        finally:
            janitor.cancel()
            with suppress(asyncio.CancelledError):
                await janitor
        await database.close()
        await readiness_database.close()
        if key_client is not None:
            await key_client.aclose()

    app = FastAPI(
        title="Todo API",
        version=__version__,
        description="Per-user tasks. Every path is scoped to one owner; "
        "another owner's tasks are indistinguishable from missing ones.",
        lifespan=lifespan,
        generate_unique_id_function=lambda route: route.name,
        docs_url=None,  # install_docs serves /docs and /redoc without a CDN
        redoc_url=None,
        # A URL has one spelling: Starlette's redirect from `/tasks/` builds its Location from
        # the Host a client sent, before the caller is decided. The 404 says what to drop.
        redirect_slashes=False,
    )
    app.state.database = database
    app.state.readiness_database = readiness_database
    app.state.database_availability = availability
    app.state.settings = settings
    app.state.token_verifier = verifier
    install_problem_handlers(app)
    routers = (tasks.router, tags.router, reminders.router, health.router, index.router)
    for router in routers:
        # The routes themselves, not `include_router`: FastAPI 0.165 matches an included
        # router's routes twice per request (to find the router, then the route), saving and
        # restoring scope keys around each, which cost the toggle, 20 routes in, about 20%
        # of its CPU. The routes carry their router's prefix, tags and responses already.
        app.router.routes.extend(router.routes)
    app.state.route_paths = route_paths(route for router in routers for route in router.routes)
    app.router.routes.append(
        McpRoute(MCP_PATH, McpEndpoint(mcp_sessions, settings), include_in_schema=False)
    )
    app.router.routes.extend(protected_resource_routes(settings))
    install_docs(app)
    # Added first, so innermost: its 500 passes through every other middleware below.
    app.add_middleware(UnexpectedErrorMiddleware)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ForwardedHeadersMiddleware, trusted=proxies)
    # Outside everything that reads headers, so none of it ever works on an oversized head.
    app.add_middleware(
        RequestHeadLimitMiddleware,
        max_url_bytes=settings.max_url_bytes,
        max_header_bytes=settings.max_header_bytes,
    )
    app.add_middleware(HeadAsGetMiddleware)  # inside CORS and the request log: they see HEAD
    if settings.cors_origins:
        app.add_middleware(
            ProblemCORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=ALLOWED_HEADERS,
            # Frontends send cookies or tokens with credentials: "include". Browsers refuse
            # credentials with `*`, so a wildcard list is served without them.
            allow_credentials="*" not in settings.cors_origins,
            expose_headers=EXPOSED_HEADERS,
        )
    else:
        app.add_middleware(CorsOffMiddleware)
    # Outside CORS, so that the answers to preflights carry these headers too.
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestLogMiddleware)  # last added = outermost: sees every response
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app
