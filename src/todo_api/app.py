"""The application factory."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from todo_api import __version__
from todo_api.api.body_limit import BodySizeLimitMiddleware
from todo_api.api.docs import install_docs
from todo_api.api.openapi import build_openapi
from todo_api.api.problems import install_problem_handlers
from todo_api.api.request_log import RequestLogMiddleware
from todo_api.api.response_headers import SecurityHeadersMiddleware
from todo_api.api.routes import health, tasks
from todo_api.db.engine import DatabaseAvailability, create_engine
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
]
# Request headers beyond the CORS-safelisted ones that a frontend sends.
ALLOWED_HEADERS = [
    "Content-Type",
    "Authorization",
    "X-Request-ID",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = create_engine(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(
        title="Todo API",
        version=__version__,
        description="Per-user tasks. Every path is scoped to one owner; "
        "another owner's tasks are indistinguishable from missing ones.",
        lifespan=lifespan,
        generate_unique_id_function=lambda route: route.name,
        docs_url=None,  # install_docs serves /docs and /redoc without a CDN
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.database_availability = DatabaseAvailability()
    app.state.database_availability.watch(engine)
    app.state.settings = settings
    install_problem_handlers(app)
    app.include_router(tasks.router)
    app.include_router(health.router)
    install_docs(app)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=ALLOWED_HEADERS,
            expose_headers=EXPOSED_HEADERS,
        )
    app.add_middleware(RequestLogMiddleware)  # last added = outermost: sees every response
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    return app
